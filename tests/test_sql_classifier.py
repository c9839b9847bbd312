"""The SQL guard's classifier: the access each statement needs and the tables it reads and
writes, for the statements a plugin may send on PostgreSQL and SQLite (docs/sql-guard.md)."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
from django.db import connection, transaction

from demo.notes.models import Note
from tachycore import sql_classifier
from tachycore.sql_classifier import EXECUTE, NONE, READ, WRITE, classify, sql_text

PG, LITE, BOTH = ("postgresql",), ("sqlite",), ("postgresql", "sqlite")

# (vendors, sql, access, reads, writes)
GOLDEN = [
    # reads
    (BOTH, "SELECT * FROM notes WHERE id = %s", READ, {"notes"}, set()),
    (BOTH, "SELECT n.title, u.name FROM notes n JOIN users u ON u.id = n.user_id", READ, {"notes", "users"}, set()),
    (BOTH, "SELECT * FROM notes WHERE user_id IN (SELECT id FROM users WHERE name = %(name)s)", READ, {"notes", "users"}, set()),
    (BOTH, "SELECT * FROM notes UNION SELECT * FROM archive", READ, {"notes", "archive"}, set()),
    (BOTH, "SELECT 1", READ, set(), set()),
    (BOTH, "SELECT * FROM notes WHERE title LIKE '%s%%' AND body = %s", READ, {"notes"}, set()),
    (BOTH, 'SELECT * FROM "Weird Table" AS w', READ, {"weird table"}, set()),
    (PG, 'SELECT * FROM public.notes JOIN "Other"."Tags" ON true', READ, {"public.notes", "other.tags"}, set()),
    (LITE, "SELECT * FROM main.notes", READ, {"main.notes"}, set()),
    (PG, "SELECT * FROM generate_series(1, 3) AS g", READ, set(), set()),
    # CTEs: the highest access of any part; a CTE's name is no table
    (BOTH, "WITH recent AS (SELECT * FROM notes) SELECT * FROM recent", READ, {"notes"}, set()),
    (PG, "WITH d AS (DELETE FROM notes RETURNING *) SELECT * FROM d", WRITE, set(), {"notes"}),
    (PG, "WITH moved AS (DELETE FROM notes RETURNING *) INSERT INTO archive SELECT * FROM moved", WRITE, set(), {"notes", "archive"}),
    (BOTH, "WITH secret AS (SELECT * FROM secret) SELECT * FROM secret", READ, {"secret"}, set()),
    (BOTH, "WITH b AS (SELECT * FROM a), a AS (SELECT 1) SELECT * FROM b", READ, {"a"}, set()),
    (BOTH, "WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT n + 1 FROM r) SELECT * FROM r", READ, set(), set()),
    # locking reads
    (PG, "SELECT * FROM notes WHERE id = %s FOR UPDATE", WRITE, set(), {"notes"}),
    (PG, "SELECT * FROM notes FOR NO KEY UPDATE SKIP LOCKED", WRITE, set(), {"notes"}),
    (PG, "SELECT * FROM notes FOR SHARE", WRITE, set(), {"notes"}),
    (PG, "SELECT * FROM notes n JOIN users u ON u.id = n.user_id FOR UPDATE OF n", WRITE, {"users"}, {"notes"}),
    # writes
    (BOTH, "INSERT INTO notes (title) VALUES (%s)", WRITE, set(), {"notes"}),
    (BOTH, "INSERT INTO archive SELECT * FROM notes", WRITE, {"notes"}, {"archive"}),
    (BOTH, "INSERT INTO notes (id, title) VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET title = excluded.title", WRITE, set(), {"notes"}),
    (LITE, "INSERT OR REPLACE INTO notes (id) VALUES (1)", WRITE, set(), {"notes"}),
    (BOTH, "UPDATE notes SET title = %s WHERE id = %s", WRITE, set(), {"notes"}),
    (PG, "UPDATE notes SET title = u.name FROM users u WHERE u.id = notes.user_id", WRITE, {"users"}, {"notes"}),
    (BOTH, "UPDATE notes SET n = (SELECT count(*) FROM notes)", WRITE, set(), {"notes"}),
    (BOTH, "DELETE FROM notes WHERE id IN (%s, %s)", WRITE, set(), {"notes"}),
    (PG, "DELETE FROM notes USING users WHERE users.id = notes.user_id", WRITE, {"users"}, {"notes"}),
    (PG, "MERGE INTO notes n USING staged s ON n.id = s.id WHEN MATCHED THEN UPDATE SET title = s.title "
         "WHEN NOT MATCHED THEN INSERT (id, title) VALUES (s.id, s.title)", WRITE, {"staged"}, {"notes"}),
    (BOTH, 'DELETE FROM "Weird Table"', WRITE, set(), {"weird table"}),
    (PG, "DELETE FROM public.notes", WRITE, set(), {"public.notes"}),
    # leading comments hide nothing
    (BOTH, "/* cleanup */ DELETE FROM notes", WRITE, set(), {"notes"}),
    (BOTH, "-- cleanup\nDELETE FROM notes", WRITE, set(), {"notes"}),
    (BOTH, "/* SELECT */ -- SELECT\n  UPDATE notes SET title = 'x'", WRITE, set(), {"notes"}),
    # EXPLAIN plans, EXPLAIN ANALYZE runs
    (BOTH, "EXPLAIN SELECT * FROM notes", READ, {"notes"}, set()),
    (PG, "EXPLAIN DELETE FROM notes", READ, {"notes"}, set()),
    (LITE, "EXPLAIN QUERY PLAN DELETE FROM notes", READ, {"notes"}, set()),
    (PG, "EXPLAIN ANALYZE DELETE FROM notes", WRITE, set(), {"notes"}),
    (PG, "EXPLAIN (ANALYZE) DELETE FROM notes", WRITE, set(), {"notes"}),
    (PG, "EXPLAIN (ANALYZE false, FORMAT JSON) DELETE FROM notes", WRITE, set(), {"notes"}),
    (PG, "EXPLAIN /* x */ ANALYZE VERBOSE UPDATE notes SET title = 'x'", WRITE, set(), {"notes"}),
    # EXECUTE: DDL and everything that is not a plain read or write
    (PG, "SELECT * INTO copy_of_notes FROM notes", EXECUTE, {"notes"}, {"copy_of_notes"}),
    (BOTH, "CREATE TABLE copy_of_notes AS SELECT * FROM notes", EXECUTE, {"notes"}, {"copy_of_notes"}),
    (BOTH, "CREATE TABLE t (id integer)", EXECUTE, set(), {"t"}),
    (BOTH, "CREATE INDEX notes_title ON notes (title)", EXECUTE, set(), {"notes"}),
    (BOTH, "DROP TABLE notes", EXECUTE, set(), {"notes"}),
    (BOTH, "ALTER TABLE notes ADD COLUMN extra integer", EXECUTE, set(), {"notes"}),
    (PG, "TRUNCATE notes, users", EXECUTE, set(), {"notes", "users"}),
    (PG, "COPY notes FROM STDIN", EXECUTE, set(), {"notes"}),
    (PG, "COPY notes TO STDOUT", EXECUTE, {"notes"}, set()),
    (PG, "COPY (SELECT * FROM notes) TO STDOUT", EXECUTE, {"notes"}, set()),
    (PG, "SET ROLE postgres", EXECUTE, set(), set()),
    (PG, "SET search_path TO other, public", EXECUTE, set(), set()),
    (PG, "SET LOCAL ROLE postgres", EXECUTE, set(), set()),
    (PG, "RESET ALL", EXECUTE, set(), set()),
    (PG, "RESET ROLE", EXECUTE, set(), set()),
    (PG, "GRANT SELECT ON notes TO someone", EXECUTE, set(), {"notes"}),
    (PG, "VACUUM notes", EXECUTE, set(), set()),
    (LITE, "VACUUM", EXECUTE, set(), set()),
    (PG, "CALL archive_notes()", EXECUTE, set(), set()),
    (PG, "DO $$ BEGIN DELETE FROM notes; END $$", EXECUTE, set(), set()),
    (PG, "LISTEN channel", EXECUTE, set(), set()),
    (PG, "NOTIFY channel", EXECUTE, set(), set()),
    (PG, "LOCK TABLE notes", EXECUTE, set(), set()),
    (PG, "PREPARE p AS DELETE FROM notes", EXECUTE, set(), set()),
    (PG, "SELECT set_config('role', 'postgres', false)", EXECUTE, set(), set()),
    (PG, "SELECT pg_terminate_backend(%s)", EXECUTE, set(), set()),
    (LITE, "SELECT load_extension('evil')", EXECUTE, set(), set()),
    (LITE, "PRAGMA foreign_keys = OFF", EXECUTE, set(), set()),
    (LITE, "PRAGMA table_info(notes)", EXECUTE, set(), set()),
    (LITE, "ATTACH DATABASE '/tmp/other.db' AS other", EXECUTE, set(), set()),
    (LITE, "DETACH DATABASE other", EXECUTE, set(), set()),
    # several statements in one string, whatever they are
    (BOTH, "SELECT 1; DELETE FROM notes", EXECUTE, set(), {"notes"}),
    (BOTH, "SELECT * FROM notes; SELECT * FROM users", EXECUTE, {"notes", "users"}, set()),
    (PG, "EXPLAIN SELECT 1; DELETE FROM notes", EXECUTE, set(), {"notes"}),
    # what the driver and the server see: lists of placeholders, nested comments, escapes
    (BOTH, "SELECT * FROM notes WHERE id IN (%s, %s,%s) AND title <> '%s, %s'", READ, {"notes"}, set()),
    (BOTH, "INSERT INTO notes (title, body) VALUES (%s, %s), (%s, %s), ( %s , %s )", WRITE, set(), {"notes"}),
    (PG, "SELECT 1 /* /* */ ; DELETE FROM notes */", READ, set(), set()),  # PostgreSQL nests comments
    (PG, "/* /* */ SELECT 1 */ DELETE FROM notes", WRITE, set(), {"notes"}),
    (LITE, "/* /* */ DELETE FROM notes /* */", WRITE, set(), {"notes"}),  # SQLite does not
    (BOTH, "SELECT 'a\\'; DELETE FROM notes; --'", EXECUTE, set(), {"notes"}),  # \ escapes nothing
    (PG, "SELECT E'a\\'; DELETE FROM notes; --'", READ, set(), set()),  # but in E'' it does
    (PG, "SELECT $$ ; DELETE FROM notes $$", READ, set(), set()),
    # a trailing semicolon is one statement
    (BOTH, "SELECT * FROM notes;", READ, {"notes"}, set()),
    # transaction control: no grant needed (Django sends savepoints for every atomic block)
    (BOTH, "BEGIN", NONE, set(), set()),
    (LITE, "BEGIN IMMEDIATE", NONE, set(), set()),
    (BOTH, "COMMIT", NONE, set(), set()),
    (BOTH, "ROLLBACK", NONE, set(), set()),
    (BOTH, 'SAVEPOINT "s140_x1"', NONE, set(), set()),
    (BOTH, 'RELEASE SAVEPOINT "s140_x1"', NONE, set(), set()),
    (BOTH, 'ROLLBACK TO SAVEPOINT "s140_x1"', NONE, set(), set()),
    (LITE, "RELEASE s1", NONE, set(), set()),
    (PG, "SET CONSTRAINTS ALL IMMEDIATE", NONE, set(), set()),
    (PG, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", NONE, set(), set()),
    (PG, "SHOW search_path", READ, set(), set()),
]


GOLDEN_CASES = [
    pytest.param(vendor, sql, access, reads, writes, id=f"{vendor}: {sql[:60]}")
    for vendors, sql, access, reads, writes in GOLDEN
    for vendor in vendors
]


@pytest.mark.parametrize(("vendor", "sql", "access", "reads", "writes"), GOLDEN_CASES)
def test_classify__golden_table(vendor, sql, access, reads, writes):
    statement = classify(sql, vendor)
    assert (statement.access, statement.reads, statement.writes) == (access, reads, writes), statement.reason
    assert statement.tables == reads | writes


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("WITH d AS (DELETE FROM notes RETURNING *) SELECT * FROM d", "DELETE in a CTE"),
        ("SELECT 1; DELETE FROM notes", "several statements (2)"),
        ("SELECT * FROM notes FOR UPDATE", "locking read (SELECT ... FOR UPDATE/SHARE)"),
        ("SELECT * INTO copy_of_notes FROM notes", "SELECT ... INTO creates a table"),
        ("EXPLAIN ANALYZE DELETE FROM notes", "EXPLAIN ANALYZE runs DELETE"),
        ("SET ROLE postgres", "SET"),
        ("DROP TABLE notes", "DROP TABLE"),
        ("SELECT set_config('role', 'x', false)", "set_config() acts beyond the tables"),
        ('SAVEPOINT "s1_x2"', "transaction control"),
    ],
)
def test_classify__reason_says_why(sql, reason):
    assert classify(sql, "postgresql").reason == reason


@pytest.mark.parametrize("vendor", BOTH)
@pytest.mark.parametrize(
    "sql", ["this is not sql (", "DELETE FROM", "SELECT * FROM notes WHERE (", "garbage words", "\x00\x01", ""]
)
def test_classify__garbage_is_execute(vendor, sql):
    statement = classify(sql, vendor)
    assert statement.access == EXECUTE
    assert statement.reason in {"unparsable", "no statement"}
    assert statement.tables == frozenset()


def test_classify__unknown_vendor_uses_a_generic_dialect():
    assert classify("DELETE FROM notes WHERE id = %s", "exoticdb").writes == {"notes"}


def test_classify__cached_by_text_and_vendor():
    sql = "SELECT * FROM notes WHERE id = %s AND 'cache' = 'cache'"
    first = classify(sql, "postgresql")
    hits = sql_classifier.cache_info().hits
    assert classify(sql, "postgresql") is first
    assert sql_classifier.cache_info().hits == hits + 1
    assert classify(sql, "sqlite") is not first  # another dialect, another entry


def test_classify__savepoints_never_fill_the_cache():
    before = sql_classifier.cache_info()
    for n in range(50):
        assert classify(f'SAVEPOINT "s1234_x{n}"', "postgresql").access == NONE
        assert classify(f'RELEASE SAVEPOINT "s1234_x{n}"', "sqlite").access == NONE
    after = sql_classifier.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)


def test_classify__sqlglot_fallback_warning_not_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="sqlglot"):
        assert classify("SET ROLE someone_else_entirely", "postgresql").access == EXECUTE
    assert caplog.records == []


def test_statement__is_frozen():
    statement = classify("SELECT * FROM notes", "sqlite")
    with pytest.raises(AttributeError):
        statement.access = EXECUTE  # type: ignore[misc]


def test_sql_text__str_bytes_and_composed_without_connection():
    from psycopg import sql

    assert sql_text("SELECT 1") == "SELECT 1"
    assert sql_text(b"SELECT 'caf\xc3\xa9'") == "SELECT 'café'"
    composed = sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier("public", "Weird Table"))
    assert sql_text(composed) == 'DELETE FROM "public"."Weird Table" WHERE id = %s'


@pytest.mark.postgres
@pytest.mark.django_db
def test_sql_text__composed_in_the_connections_context():
    from psycopg import sql

    composed = sql.SQL("UPDATE {} SET title = {} WHERE id = %s").format(
        sql.Identifier("public", "Weird Table"), sql.Literal("it's")
    )
    connection.ensure_connection()
    text = sql_text(composed, connection)
    assert text == "UPDATE \"public\".\"Weird Table\" SET title = 'it''s' WHERE id = %s"
    assert sql_text(composed, connection.connection) == text
    statement = classify(text, connection.vendor)
    assert (statement.access, statement.writes) == (WRITE, {"public.weird table"})


# -- what Django's ORM sends, as an execute wrapper sees it -----------------------------------


@contextmanager
def executed():
    """The SQL texts sent through Django's cursor, placeholders and all, as the guard sees them."""
    seen: list[str] = []

    def wrapper(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def classified(texts: list[str]) -> list[tuple[int, frozenset[str], frozenset[str]]]:
    return [(s.access, s.reads, s.writes) for s in (classify(text, connection.vendor) for text in texts)]


TABLE = Note._meta.db_table
ONLY_NOTES = frozenset({TABLE})
NOTHING: frozenset[str] = frozenset()


@pytest.mark.django_db
def test_orm__create_is_a_write_on_its_table():
    with executed() as seen:
        Note.objects.create(title="hello")
    assert classified(seen) == [(WRITE, NOTHING, ONLY_NOTES)]


@pytest.mark.django_db
def test_orm__bulk_create_is_a_write():
    with executed() as seen:
        Note.objects.bulk_create([Note(title=f"n{i}") for i in range(5)])
    assert set(classified(seen)) == {(WRITE, NOTHING, ONLY_NOTES)}


@pytest.mark.django_db
def test_orm__filters_are_reads():
    Note.objects.create(title="100% sure")
    with executed() as seen:
        list(Note.objects.filter(title__contains="%"))
        list(Note.objects.filter(title__in=["a", "b"], word_count__gte=2).order_by("title")[:3])
        Note.objects.filter(title__startswith="100").exists()
        Note.objects.count()
        list(Note.objects.filter(pk__in=range(300)))
    assert len(seen) == 5
    assert set(classified(seen)) == {(READ, ONLY_NOTES, NOTHING)}


@pytest.mark.django_db
def test_orm__update_and_delete_are_writes():
    note = Note.objects.create(title="x")
    with executed() as seen:
        Note.objects.filter(pk=note.pk).update(title="y")
        note.title = "z"
        note.save()
        Note.objects.filter(pk=note.pk).delete()
    accesses = classified(seen)
    assert {a for a in accesses if a[0] == WRITE} == {(WRITE, NOTHING, ONLY_NOTES)}
    assert all(a in {(WRITE, NOTHING, ONLY_NOTES), (READ, ONLY_NOTES, NOTHING)} for a in accesses)


@pytest.mark.django_db
def test_orm__atomic_and_select_for_update():
    note = Note.objects.create(title="locked")
    with executed() as seen, transaction.atomic():
        list(Note.objects.select_for_update().filter(pk=note.pk))
        with transaction.atomic():  # a savepoint inside the test's transaction
            list(Note.objects.select_for_update(skip_locked=True, of=("self",)).filter(pk=note.pk))
    accesses = classified(seen)
    # SQLite has no FOR UPDATE: Django leaves it out, and the query is a plain read
    lock = (WRITE, NOTHING, ONLY_NOTES) if connection.features.has_select_for_update else (READ, ONLY_NOTES, NOTHING)
    assert [a for a in accesses if a[0] != NONE] == [lock, lock]
    assert all(s.startswith(("SAVEPOINT", "RELEASE")) for s, a in zip(seen, accesses, strict=True) if a[0] == NONE)
    assert len(seen) >= 4  # the two savepoints of the atomic blocks are classified too
