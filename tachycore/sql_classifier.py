"""What an SQL statement does, for the SQL guard: the access it needs and the tables it touches.

The governance layer's execute wrapper calls :func:`classify` on each statement a plugin
runs and compares the answer with the plugin's grants. This module only reads SQL text: it
runs nothing, knows no plugin and imports nothing of tachycore (a leaf of the kernel).
sqlglot parses; an LRU cache keyed by the text makes a repeated statement cost a dict
lookup, and the ORM repeats the same few statements (its parameters are placeholders).

The access values equal ``tachycore.governance.Access``: ``NONE=0`` (transaction control,
needs no grant), ``READ=1``, ``WRITE=2``, ``EXECUTE=3`` (anything else: DDL, ``COPY``,
``SET``, several statements, what does not parse). When in doubt the answer is EXECUTE,
so that a gap in this module refuses rather than lets through. See docs/sql-guard.md.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

NONE, READ, WRITE, EXECUTE = 0, 1, 2, 3

#: the LRU cache's size; a distinct statement text costs one entry
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Statement:
    """The classification of one SQL text.

    ``writes`` are the tables the statement changes (or locks, or creates); ``reads`` the
    other tables it reads, so a check can say "WRITE on x, READ on y". Names are lower-cased
    and unquoted, ``schema.table`` when the SQL names a schema, the plain name otherwise.
    """

    access: int
    reads: frozenset[str]
    writes: frozenset[str]
    #: why, in a few words, for audit rows and error messages ("DELETE in a CTE", "unparsable")
    reason: str

    @property
    def tables(self) -> frozenset[str]:
        """Every table the statement touches."""
        return self.reads | self.writes


_EMPTY: frozenset[str] = frozenset()

#: Django's savepoints are named after the thread and a counter that only grows, so each
#: text is new: they are recognised before the cache and never fill it
_SAVEPOINT_PREFIXES = ("SAVEPOINT ", "RELEASE ", "ROLLBACK TO ")
_SAVEPOINT = re.compile(
    r'(?:SAVEPOINT|RELEASE(?: SAVEPOINT)?|ROLLBACK TO(?: SAVEPOINT)?) (?:"\w+"|\w+)'
)
_CONTROL = Statement(NONE, _EMPTY, _EMPTY, "transaction control")


def classify(sql: str, vendor: str) -> Statement:
    """Classify ``sql`` as run on a database of ``vendor`` (Django's ``connection.vendor``).

    Placeholders are the ones Django passes to the driver (``%s``, ``%(name)s``); a psycopg
    ``sql.Composed`` goes through :func:`sql_text` first.
    """
    if len(sql) <= 80 and sql.startswith(_SAVEPOINT_PREFIXES) and _SAVEPOINT.fullmatch(sql):
        return _CONTROL
    return _classify(sql, vendor)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _classify(sql: str, vendor: str) -> Statement:
    dialect, params = _VENDORS.get(vendor, (None, _QMARK))
    try:
        with _quiet_fallback():
            trees = [
                tree for tree in sqlglot.parse(_driver_text(sql, params), read=dialect) if tree
            ]
    except SqlglotError:
        return Statement(EXECUTE, _EMPTY, _EMPTY, "unparsable")
    if not trees:
        return Statement(EXECUTE, _EMPTY, _EMPTY, "no statement")
    if len(trees) > 1:
        parts = [_classify_tree(tree, vendor) for tree in trees]
        return Statement(
            EXECUTE,
            frozenset().union(*(part.reads for part in parts)),
            frozenset().union(*(part.writes for part in parts)),
            f"several statements ({len(trees)})",
        )
    return _classify_tree(trees[0], vendor)


def cache_info() -> functools._CacheInfo:
    """Hits, misses and size of the classification cache (for the benchmark and the node)."""
    return _classify.cache_info()


def cache_clear() -> None:
    """Empty the classification cache."""
    _classify.cache_clear()


def sql_text(sql: object, connection: object = None) -> str:
    """The text of what a caller passed to ``cursor.execute``.

    ``str`` as is, ``bytes`` decoded as UTF-8, a psycopg ``sql.Composable`` rendered with
    ``as_string`` in the context of ``connection`` (a Django connection, a psycopg one, or
    ``None``: identifiers are quoted alike, only some literals could be rendered differently).
    """
    if isinstance(sql, str):
        return sql
    if isinstance(sql, bytes | bytearray | memoryview):
        return bytes(sql).decode("utf-8", "replace")
    as_string = getattr(sql, "as_string", None)
    if as_string is None:
        return str(sql)
    # Django's wrapper holds the psycopg connection in .connection; a psycopg one is the context
    context = (
        getattr(connection, "connection", None) if hasattr(connection, "vendor") else connection
    )
    return str(as_string(context))


# -- placeholders: the text the driver would see ---------------------------------------------

#: string literals, quoted identifiers and comments are copied as they are; outside them,
#: a placeholder or "%%" (a "%" escaped for the driver) is replaced. A list of placeholders
#: (``IN (%s, %s, ...)``) or of rows of them (``VALUES (%s, %s), (%s, %s), ...``) becomes one:
#: it changes neither the kind of statement nor its tables, and a parse of 100 rows costs 50x one
_PLACEHOLDER = re.compile(
    r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|--[^\n]*|/\*.*?\*/)"""
    r"|(\((?:\s*%s\s*,)*\s*%s\s*\))(?:\s*,\s*\((?:\s*%s\s*,)*\s*%s\s*\))+"
    r"|%s(?:\s*,\s*%s)+|%\((\w+)\)s|%s|%%",
    re.DOTALL,
)
#: sqlglot reads psycopg's %s and %(name)s in its postgres dialect; the others read ? and :name
_PSYCOPG = {"%s": "%s", "%(": "%({})s", "%%": "%"}
_QMARK = {"%s": "?", "%(": ":{}", "%%": "%"}
#: Django's vendor -> sqlglot's dialect; another vendor is read in sqlglot's generic dialect
_VENDORS: dict[str, tuple[str | None, dict[str, str]]] = {
    "postgresql": ("postgres", _PSYCOPG),
    "sqlite": ("sqlite", _QMARK),
    "mysql": ("mysql", _QMARK),
    "oracle": ("oracle", _QMARK),
}


def _driver_text(sql: str, params: dict[str, str]) -> str:
    if "%" not in sql:
        return sql

    def replace(match: re.Match[str]) -> str:
        quoted, first_row, name = match.groups()
        if quoted is not None:
            return quoted
        if first_row is not None:
            return first_row.replace("%s", params["%s"])
        if name is not None:
            return params["%("].format(name)
        return params[match.group(0)[:2]]  # "%s, %s, ..." -> one

    return _PLACEHOLDER.sub(replace, sql)


# -- sqlglot's warning on a statement it keeps as a plain command ------------------------------

_classifying = contextvars.ContextVar("sql_classifier_parsing", default=False)


class _FallbackFilter(logging.Filter):
    """Drops sqlglot's "Falling back to parsing as a 'Command'" while this module parses:
    here a command is expected (SET ROLE, VACUUM...) and classified, not a problem to log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _classifying.get()


logging.getLogger("sqlglot").addFilter(_FallbackFilter())


@contextlib.contextmanager
def _quiet_fallback() -> Iterator[None]:
    token = _classifying.set(True)
    try:
        yield
    finally:
        _classifying.reset(token)


# -- statements -----------------------------------------------------------------------------

_QUERIES = (exp.Select, exp.SetOperation, exp.Subquery, exp.Values)
_DML = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
_TRANSACTION = (exp.Transaction, exp.Commit, exp.Rollback)
#: statement keywords sqlglot keeps as a plain command and that need no grant or only READ
_COMMANDS = {
    "SAVEPOINT": (NONE, "transaction control"),
    "RELEASE": (NONE, "transaction control"),
    "SHOW": (READ, "SHOW reads a setting"),
}
#: built-in functions whose effect reaches beyond the tables a statement names: the
#: session (set_config is SET), other sessions, the server's files, a sequence; a user's
#: own functions are not known (see docs/sql-guard.md, "Limits")
_SIDE_EFFECT_FUNCTIONS = frozenset({
    "set_config", "setval", "pg_notify", "pg_terminate_backend", "pg_cancel_backend",
    "pg_reload_conf", "pg_rotate_logfile", "pg_read_file", "pg_read_binary_file", "pg_ls_dir",
    "lo_import", "lo_export", "lo_unlink", "lo_put", "lo_from_bytea", "dblink", "dblink_exec",
    "load_extension", "writefile", "readfile",
})  # fmt: skip
#: functions of the site's own apps that write tables, by lower-cased name: a statement that
#: calls one writes those tables (``declare_writing_function``; kv declares ``kv_incr``)
_WRITING_FUNCTIONS: dict[str, frozenset[str]] = {}


def declare_writing_function(name: str, tables: Iterable[str]) -> None:
    """Say that the database function ``name`` writes ``tables``: a statement calling it
    (``SELECT name(...)``) is then a WRITE of them, not a READ of nothing. For an app that
    creates such a function in a migration; classifications made before are forgotten."""
    _WRITING_FUNCTIONS[name.lower()] = frozenset(table.lower() for table in tables)
    _classify.cache_clear()


def _classify_tree(tree: exp.Expr, vendor: str) -> Statement:
    if isinstance(tree, exp.Command):
        return _classify_command(tree, vendor)
    access, reason = _root_access(tree)
    if access in (READ, WRITE):
        for nested, nested_reason in _nested_effects(tree):
            if nested > access:
                access, reason = nested, nested_reason
    reads, writes = _tables(tree)
    writes |= _function_writes(tree)
    return Statement(access, reads - writes, writes, reason)


def _root_access(tree: exp.Expr) -> tuple[int, str]:
    if isinstance(tree, _QUERIES):
        return READ, "SELECT"
    if isinstance(tree, _DML):
        return WRITE, tree.key.upper()
    if isinstance(tree, _TRANSACTION):
        return NONE, "transaction control"
    if isinstance(tree, exp.Set) and all(
        str(item.args.get("kind") or "").upper() == "TRANSACTION" for item in tree.expressions
    ):
        return NONE, "transaction control"
    if isinstance(tree, exp.Condition | exp.Alias):
        # a bare expression: sqlglot read words it did not know as a column ("LISTEN x")
        return EXECUTE, "unparsable"
    name = {"truncatetable": "TRUNCATE"}.get(tree.key, tree.key.upper())
    kind = tree.args.get("kind")
    return EXECUTE, f"{name} {kind}" if isinstance(kind, str) else name


def _nested_effects(tree: exp.Expr) -> Iterator[tuple[int, str]]:
    """What parts of a query or DML statement do beyond its kind: a DELETE in a CTE, a lock."""
    for node in tree.walk():
        if isinstance(node, _DML) and node is not tree:
            where = "a CTE" if node.find_ancestor(exp.CTE) else "a subquery"
            yield WRITE, f"{node.key.upper()} in {where}"
        elif isinstance(node, exp.Select):
            if node.args.get("into"):
                yield EXECUTE, "SELECT ... INTO creates a table"
            if node.args.get("locks"):
                yield WRITE, "locking read (SELECT ... FOR UPDATE/SHARE)"
        elif isinstance(node, exp.Anonymous) and node.name.lower() in _SIDE_EFFECT_FUNCTIONS:
            yield EXECUTE, f"{node.name.lower()}() acts beyond the tables"
        elif isinstance(node, exp.Anonymous) and node.name.lower() in _WRITING_FUNCTIONS:
            yield WRITE, f"{node.name.lower()}() writes {', '.join(sorted(_WRITING_FUNCTIONS[node.name.lower()]))}"


def _classify_command(tree: exp.Command, vendor: str) -> Statement:
    keyword = str(tree.this).upper()
    rest = tree.text("expression").strip()
    if keyword == "SET" and rest[:12].upper() == "CONSTRAINTS ":
        return _CONTROL  # checked at commit or now: transaction control
    if keyword == "EXPLAIN":
        return _classify_explain(rest, vendor)
    access, reason = _COMMANDS.get(keyword, (EXECUTE, keyword))
    return Statement(access, _EMPTY, _EMPTY, reason)


_EXPLAIN_OPTION_WORDS = frozenset({"ANALYZE", "ANALYSE", "VERBOSE", "QUERY", "PLAN"})


def _classify_explain(rest: str, vendor: str) -> Statement:
    """EXPLAIN plans a statement, EXPLAIN ANALYZE (PostgreSQL) also runs it.

    An ANALYZE option anywhere (``ANALYZE``, ``(ANALYZE)``, even ``(ANALYZE false)``) counts
    as running: the statement then needs what the explained statement needs.
    """
    try:
        tokens = sqlglot.tokenize(rest, read=_VENDORS.get(vendor, (None,))[0])
    except SqlglotError:
        return Statement(EXECUTE, _EMPTY, _EMPTY, "unparsable")
    options: list[str] = []
    index = 0
    if tokens and tokens[0].text == "(":
        while index < len(tokens) and tokens[index].text != ")":
            options.append(tokens[index].text.upper())
            index += 1
        index += 1
    while index < len(tokens) and tokens[index].text.upper() in _EXPLAIN_OPTION_WORDS:
        options.append(tokens[index].text.upper())
        index += 1
    if index >= len(tokens):
        return Statement(EXECUTE, _EMPTY, _EMPTY, "unparsable")
    inner = _classify(rest[tokens[index].start :], vendor)
    if inner.reason == "unparsable" or inner.reason.startswith("several statements"):
        return inner
    if "ANALYZE" in options or "ANALYSE" in options:
        return Statement(
            inner.access, inner.reads, inner.writes, f"EXPLAIN ANALYZE runs {inner.reason}"
        )
    return Statement(READ, inner.tables, _EMPTY, f"EXPLAIN of {inner.reason}")


# -- tables ---------------------------------------------------------------------------------


def _tables(tree: exp.Expr) -> tuple[frozenset[str], frozenset[str]]:
    reads: set[str] = set()
    writes: set[str] = set()
    # DDL and COPY: the tables the statement names are changed (COPY ... TO reads its table)
    statement_writes = not isinstance(tree, (*_QUERIES, *_DML)) and not (
        isinstance(tree, exp.Copy) and not tree.args.get("kind")
    )
    for table in tree.find_all(exp.Table):
        name = _table_name(table)
        if name is None or table.find_ancestor(exp.Lock) or _is_cte_reference(table, name):
            continue
        if _is_target(table) or (statement_writes and not table.find_ancestor(*_QUERIES)):
            writes.add(name)
        else:
            reads.add(name)
    for select in tree.find_all(exp.Select):
        if select.args.get("locks"):
            writes.update(_locked_tables(select))
    return frozenset(reads), frozenset(writes)


def _function_writes(tree: exp.Expr) -> frozenset[str]:
    """The tables written by the declared functions the statement calls."""
    if not _WRITING_FUNCTIONS:
        return _EMPTY
    return frozenset().union(*(
        _WRITING_FUNCTIONS.get(node.name.lower(), _EMPTY) for node in tree.find_all(exp.Anonymous)
    ))


def _table_name(table: exp.Table) -> str | None:
    """``schema.table`` lower-cased, or None for a table function (``generate_series(...)``)."""
    if not isinstance(table.this, exp.Identifier):
        return None
    return ".".join(part.name for part in table.parts).lower()


def _is_target(table: exp.Table) -> bool:
    """Whether the table is what an INSERT/UPDATE/DELETE/MERGE changes or SELECT INTO creates."""
    child: exp.Expr = table
    parent = table.parent
    if isinstance(parent, exp.Schema):  # INSERT INTO t (a, b)
        child, parent = parent, parent.parent
    if isinstance(parent, exp.Into):
        return True
    return isinstance(parent, _DML) and parent.args.get("this") is child


def _is_cte_reference(table: exp.Table, name: str) -> bool:
    """Whether an unqualified name refers to a CTE in scope rather than to a table.

    A CTE is seen by the statement's body and, in a plain WITH, by the CTEs after it; in
    WITH RECURSIVE by all of them. ``WITH x AS (SELECT * FROM x)`` reads the table x.
    """
    if table.args.get("db") or _is_target(table):
        return False
    child: exp.Expr = table
    for node in _ancestors(table):
        clause = node if isinstance(node, exp.With) else None
        if clause is not None:
            # reached from inside one of its CTEs: the CTEs before it (all of them if recursive)
            position = next((i for i, cte in enumerate(clause.expressions) if cte is child), 0)
            visible = (
                clause.expressions
                if clause.args.get("recursive")
                else clause.expressions[:position]
            )
        else:
            owned = next(
                (value for value in node.args.values() if isinstance(value, exp.With)), None
            )
            visible = owned.expressions if owned is not None and owned is not child else []
        if any(cte.alias.lower() == name for cte in visible):
            return True
        child = node
    return False


def _ancestors(node: exp.Expr) -> Iterator[exp.Expr]:
    parent = node.parent
    while parent is not None:
        yield parent
        parent = parent.parent


def _locked_tables(select: exp.Select) -> set[str]:
    """The tables a locking read locks: those named after OF, else all it selects from."""
    sources: dict[str, str] = {}
    clauses = [
        select.args.get("from_") or select.args.get("from"),
        *(select.args.get("joins") or ()),
    ]
    for clause in filter(None, clauses):
        for table in clause.find_all(exp.Table):
            name = _table_name(table)
            if name is not None and not _is_cte_reference(table, name):
                sources[table.alias_or_name.lower()] = name
    named: set[str] = set()
    for lock in select.args["locks"]:
        for of in lock.expressions:
            if of.name.lower() not in sources:  # a subquery's alias: lock everything
                return set(sources.values())
            named.add(sources[of.name.lower()])
        if not lock.expressions:
            return set(sources.values())
    return named
