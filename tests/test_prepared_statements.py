"""Where the site allows server-side prepared statements (``OPTIONS["prepare_threshold"]``),
kv's hot statements and the jobs claim are prepared once per connection, with the same
results; where it does not (Django's default), nothing is prepared."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

import jobs
import kv
from jobs.sql import statements_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def prepare_threshold():
    """``set(value)``: the raw connection's ``prepare_threshold`` for this test."""
    connection.ensure_connection()
    raw = connection.connection
    before = raw.prepare_threshold

    def set_threshold(value):
        raw.prepare_threshold = value
        connection.__dict__.pop("_kv_statements", None)  # made again for the new setting

    yield set_threshold
    raw.prepare_threshold = before
    connection.__dict__.pop("_kv_statements", None)


def prepared() -> list[str]:
    return [row[0] for row in connection.connection.execute("SELECT statement FROM pg_prepared_statements")]


@pytest.mark.parametrize("threshold", [5, None])
def test_kv__hot_statements_prepared_only_where_allowed(prepare_threshold, threshold):
    prepare_threshold(threshold)
    store = kv.get_store()
    connection.connection.execute("DEALLOCATE ALL")
    for n in range(1, 4):
        assert store.incr("counter") == n
        store.set("greeting", {"n": n})
        assert store.get("greeting") == {"n": n}
    statements = prepared()
    if threshold is None:
        assert statements == []
    else:
        # set with its NOTIFY in a CTE, incr through kv_incr() (which sends its own), the read
        assert sum("INSERT INTO _kv" in text and "pg_notify" in text for text in statements) == 1
        assert any("kv_incr(" in text for text in statements)
        assert any(text.startswith("SELECT type") for text in statements)
    assert store.incr("counter", 10) == 13
    store.set("word", "x")
    with pytest.raises(kv.errors.NotAnInteger):
        store.incr("word")
    assert store.get("word") == "x"


@pytest.mark.parametrize("threshold", [5, None])
def test_jobs__the_claim_prepared_only_where_allowed(prepare_threshold, threshold):
    prepare_threshold(threshold)
    connection.connection.execute("DEALLOCATE ALL")
    store = jobs.get_job_store()
    first, second = store.enqueue("toolbox.echo", 1), store.enqueue("toolbox.echo", 2)
    now = timezone.now()
    rows = statements_for("default").claim("worker-a", now, now, 10, ["toolbox.echo"])
    assert sorted(row[0] for row in rows) == [first.id, second.id]
    claimed = [text for text in prepared() if "FOR UPDATE SKIP LOCKED" in text]
    assert claimed == [] if threshold is None else len(claimed) == 1
