"""What keeps a glob pattern from being a denial of service: the limits on its length and
wildcards, the key range and length bound that narrow the keys it runs on, and, on
PostgreSQL, the statement timeout of ``KV["KEYS_TIMEOUT"]``; with 100,000 keys the worst
patterns allowed answer within a second through the HTTP API and the admin's key search.

The limits as the store, the API and the admin apply them on both databases are tested in
``test_kv_store.py``, ``test_kv_api.py`` and ``test_admin_keys.py``.
"""

from __future__ import annotations

import time

import pytest
from django.contrib.auth.models import Permission
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

import kv
from kv.errors import InvalidPattern, SearchTimeout
from kv.sql.glob import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERN_WILDCARDS,
    check_pattern,
    key_bounds,
    length_bounds,
)

W, L = MAX_PATTERN_WILDCARDS, MAX_PATTERN_LENGTH
KEYS = "/api/kv/keys/"
CHANGELIST = "admin:kv_kventry_changelist"
#: one of the slowest shapes measured on PostgreSQL: every "?" after a "*" is a state more
#: of the regular expression at each character of each key (docs/BENCHMARKS.md)
COSTLIEST = "*" + "?" * (W - 1)
#: as slow, and matching no key: the search reads every key (none ends with "x")
SLOW_AND_EMPTY = "*" + "?" * (W - 2) + "*x"


# -- the helpers of kv.sql.glob --------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "expected"), [
    ("user:*", ("user:", "user;")), ("a\\*b*", ("a*b", "a*c")), ("*a", None), ("?a", None), ("[a]b", None),
    ("a\U0010ffff*", ("a\U0010ffff", "b")), ("a\ud7ff", ("a\ud7ff", "a\ue000")), ("\U0010ffff", None), ("", None),
], ids=repr)
def test_key_bounds__the_range_of_the_literal_prefix(pattern, expected):
    assert key_bounds(pattern) == expected


@pytest.mark.parametrize(("pattern", "expected"), [
    ("abc", (3, True)), ("a?[bc]\\*", (4, True)), ("a*", (1, False)), ("**", (0, False)), ("", (0, True)),
    ("[", (1, True)), ("a[^]", (2, True)), ("a\\", (2, True)),
], ids=repr)
def test_length_bounds__how_long_a_matching_key_is(pattern, expected):
    assert length_bounds(pattern) == expected


def test_check_pattern__counts_each_wildcard_and_no_escaped_one():
    assert check_pattern("[ab]" * W + "\\*" * 50) == "[ab]" * W + "\\*" * 50
    with pytest.raises(InvalidPattern, match=f"this one has {W + 1}$"):
        check_pattern("[ab]" * W + "*")


# -- PostgreSQL: the statement timeout ---------------------------------------------------------------


@pytest.fixture(scope="module")
def written_keys(django_db_setup, django_db_blocker):
    """100,000 keys, ``key:000001:`` plus 0 to 59 hex digits, written by one statement and
    committed, once for the module (the tests' own writes roll back as usual)."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO _kv (key, type, value, expire_at, created, updated) "
            "SELECT 'key:' || lpad(g::text, 6, '0') || ':' || left(md5(g::text) || md5(g::text), g % 60), "
            "'value', '1'::jsonb, NULL, now(), now() FROM generate_series(1, 100000) AS g"
        )
        cursor.execute("ANALYZE _kv")
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM _kv WHERE key >= 'key:' AND key < 'key;'")


@pytest.fixture
def many_keys(written_keys, db):
    """The 100,000 keys of ``written_keys``, in a test with database access."""


@pytest.fixture
def store():
    return kv.get_store()


@pytest.fixture
def key_viewer(django_user_model):
    """A staff user allowed to view keys (``kv.view_kventry``) and nothing more, signed in."""
    user = django_user_model.objects.create_user("key-viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="kv", codename="view_kventry"))
    viewer = Client()
    viewer.force_login(user)
    return viewer


def statement_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


@pytest.mark.postgres
def test_keys__past_the_timeout_raises_and_the_callers_transaction_goes_on(store, many_keys, settings):
    settings.KV = {"KEYS_TIMEOUT": 0.001}
    with transaction.atomic():
        store.set("mine", 1)

        with pytest.raises(SearchTimeout, match=r"took longer than KV\['KEYS_TIMEOUT'\] \(0.001 s\)"):
            store.keys(SLOW_AND_EMPTY)

        assert store.get("mine") == 1  # rolled back to the search's savepoint only


@pytest.mark.postgres
def test_keys__the_callers_own_statement_timeout_is_kept(db, store, settings):
    settings.KV = {"KEYS_TIMEOUT": 2}
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = '7s'")

        store.keys("*")

        assert statement_timeout() == "7s"


@pytest.mark.postgres
def test_list__past_the_timeout_503_with_the_setting_named(key_viewer, many_keys, settings):
    settings.KV = {"HTTP_ENABLED": True, "KEYS_TIMEOUT": 0.001}

    response = key_viewer.get(KEYS, {"pattern": SLOW_AND_EMPTY})

    assert response.status_code == 503, response.content
    assert "KV['KEYS_TIMEOUT']" in response.json()["detail"] and b"Traceback" not in response.content


@pytest.mark.postgres
def test_admin_search__past_the_timeout_lists_nothing_and_says_why(key_viewer, many_keys, settings):
    settings.KV = {"KEYS_TIMEOUT": 0.001}

    response = key_viewer.get(reverse(CHANGELIST), {"q": SLOW_AND_EMPTY})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    (message,) = [str(m) for m in response.context["messages"]]
    assert message.startswith("Search cancelled: ") and "KV['KEYS_TIMEOUT']" in message


# -- PostgreSQL: the worst patterns allowed, over 100,000 keys ------------------------------------------

WORST_ALLOWED = {
    f"? x {W}": "?" * W,
    f"*a x {W} + b": "*a" * W + "b",
    f"* + ? x {W - 1}": COSTLIEST,
    f"{L} characters": COSTLIEST.ljust(L, "x"),
    "literal prefix + *a": "key:01" + "*a" * W,
    f"literal prefix, {L} characters": ("key:0001" + "*?" * (W // 2)).ljust(L, "x"),
}


def timed(get, url: str, params: dict):
    """The response and the seconds it took."""
    start = time.perf_counter()
    response = get(url, params)
    return response, time.perf_counter() - start


@pytest.mark.postgres
@pytest.mark.parametrize("pattern", WORST_ALLOWED.values(), ids=WORST_ALLOWED.keys())
def test_worst_allowed_pattern__answers_within_a_second(key_viewer, many_keys, settings, pattern):
    settings.KV = {"HTTP_ENABLED": True}
    key_viewer.get(reverse(CHANGELIST), {"q": "warm-up"})  # templates compiled, sessions read

    api, api_took = timed(key_viewer.get, KEYS, {"pattern": pattern, "limit": 1000})
    admin, admin_took = timed(key_viewer.get, reverse(CHANGELIST), {"q": pattern})

    assert api.status_code == 200 and admin.status_code == 200
    listed = [entry.key for entry in admin.context["cl"].result_list]  # the first page
    assert api.json()["keys"][: len(listed)] == listed
    assert api_took < 1, f"API: {api_took:.2f} s"
    assert admin_took < 1, f"admin search: {admin_took:.2f} s"


@pytest.mark.postgres
@pytest.mark.parametrize(("pattern", "limit"), [
    ("?" * (W + 1), f"at most {W} wildcards"), ("?" * 5000, f"at most {L} characters"),
    ("*a" * 200 + "b", f"at most {L} characters"), ("*a" * W + "*", f"at most {W} wildcards"),
], ids=["one wildcard over", "? x 5000", "*a x 200 + b", "*a x W + *"])
def test_pattern_past_a_limit__400_at_once_naming_the_limit(key_viewer, many_keys, settings, pattern, limit):
    settings.KV = {"HTTP_ENABLED": True}

    response, took = timed(key_viewer.get, KEYS, {"pattern": pattern})

    assert response.status_code == 400 and limit in response.json()["detail"]
    assert took < 0.5
