"""The key-value HTTP API at /api/kv/: switches, permissions, every endpoint and status code,
URL-encoded keys, and the OpenAPI schema.

The tests drive the site through Django's test client and check what the store holds
afterwards. They run inside the test transaction, where the store never uses its L1 cache.
"""

from __future__ import annotations

import io
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.permissions import BasePermission

import kv
from kv.checks import check_permission_classes
from kv.errors import InvalidValue, ValueTooLarge
from kv.scans import cursor_after
from kv.sql.glob import MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS
from tests.helpers.rows import disable_in_registry

pytestmark = pytest.mark.django_db

ON = {"HTTP_ENABLED": True}
INT64_MAX = 2**63 - 1
JSON = "application/json"


class RefuseWithMessage(BasePermission):
    """A custom permission class named in KV[...] by the tests."""

    message = "Closed for the test."

    def has_permission(self, request, view) -> bool:
        return False


@pytest.fixture
def store():
    return kv.get_store()


@pytest.fixture
def http_on(settings):
    settings.KV = dict(ON)
    return settings


@pytest.fixture
def api(http_on, admin_client):
    """A staff user's client, with the API switched on."""
    return admin_client


@pytest.fixture
def operator(http_on, django_user_model):
    """A staff user with every kv model permission, not a superuser, with the API on."""
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="kv"))
    operator = Client()
    operator.force_login(user)
    return operator


@pytest.fixture
def user_client(django_user_model):
    """A signed-in user who is not staff (its own client: ``client`` stays anonymous)."""
    user_client = Client()
    user_client.force_login(django_user_model.objects.create_user("reader", password="pw"))
    return user_client


def url(key: str | None = None, action: str | None = None) -> str:
    if key is None:
        return "/api/kv/keys/"
    return f"/api/kv/keys/{quote(key, safe='')}/" + (f"{action}/" if action else "")


def pm(*args: str) -> None:
    call_command("pm", *args, stdout=io.StringIO(), stderr=io.StringIO())


def assert_error(response, status: int) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert b"Traceback" not in response.content
    return body["detail"]


# -- switches: KV["HTTP_ENABLED"] and the plugin --------------------------------------------------


@pytest.mark.parametrize("path", [url(), url("a"), url("a", "incr"), url("a", "hash")])
def test_http_disabled__every_route_404(admin_client, store, path):
    store.set("a", 1)

    assert admin_client.get(path).status_code == 404
    assert admin_client.post(url("a", "incr"), {}, content_type=JSON).status_code == 404
    assert store.get("a") == 1


def test_http_enabled_by_setting__served_without_restart(admin_client, settings):
    assert admin_client.get(url()).status_code == 404

    settings.KV = ON
    assert admin_client.get(url()).status_code == 200

    settings.KV = {"HTTP_ENABLED": False}
    assert admin_client.get(url()).status_code == 404


def test_plugin_disabled__404_until_enabled_again(api):
    disable_in_registry("kv")
    assert api.get(url()).status_code == 404
    assert api.put(url("a"), {"value": 1}, content_type=JSON).status_code == 404

    pm("enable", "kv")
    assert api.get(url()).status_code == 200


# -- permissions --------------------------------------------------------------------------------


def test_permissions__anonymous_refused_by_default(http_on, client, store):
    store.set("a", 1)

    assert_error(client.get(url("a")), 403)
    assert_error(client.put(url("a"), {"value": 2}, content_type=JSON), 403)
    assert store.get("a") == 1


def test_permissions__signed_in_non_staff_refused_by_default(http_on, user_client, store):
    store.set("a", 1)

    assert_error(user_client.get(url()), 403)
    assert_error(user_client.delete(url("a")), 403)
    assert store.get("a") == 1


def test_permissions__staff_allowed_by_default(api, store):
    assert api.put(url("a"), {"value": 2}, content_type=JSON).status_code == 200
    assert api.get(url("a")).json()["value"] == 2
    assert store.get("a") == 2


def test_permissions__read_and_write_classes_from_settings(settings, client, user_client, store):
    settings.KV = {**ON, "READ_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
                   "WRITE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"]}
    store.set("a", 1)

    assert client.get(url("a")).json()["value"] == 1
    assert_error(client.put(url("a"), {"value": 2}, content_type=JSON), 403)
    assert user_client.put(url("a"), {"value": 3}, content_type=JSON).status_code == 200
    assert store.get("a") == 3


def test_permissions__custom_class_message_reaches_the_client(settings, admin_client):
    settings.KV = {**ON, "WRITE_PERMISSION_CLASSES": ["tests.test_kv_api.RefuseWithMessage"]}

    assert admin_client.get(url()).status_code == 200
    assert assert_error(admin_client.put(url("a"), {"value": 1}, content_type=JSON), 403) == "Closed for the test."


def test_permissions__empty_list_allows_everyone(settings, client, store):
    settings.KV = {**ON, "READ_PERMISSION_CLASSES": [], "WRITE_PERMISSION_CLASSES": []}

    assert client.put(url("a"), {"value": 1}, content_type=JSON).status_code == 200
    assert store.get("a") == 1


def test_permissions__bad_class_path_is_a_json_500_without_traceback(settings, admin_client):
    settings.KV = {**ON, "READ_PERMISSION_CLASSES": ["nowhere.Nothing"]}

    assert_error(admin_client.get(url()), 500)


@pytest.mark.parametrize("path, problem", [
    ("nowhere.Nothing", "cannot import 'nowhere.Nothing'"),
    ("os.path.join", "is not a permission class"),
])
def test_check__bad_permission_class_is_kv_e002(settings, path, problem):
    settings.KV = {"WRITE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser", path]}

    errors = check_permission_classes()

    assert [error.id for error in errors] == ["kv.E002"]
    assert 'KV["WRITE_PERMISSION_CLASSES"]' in errors[0].msg and problem in errors[0].msg
    assert errors[0].hint


def test_check__default_and_custom_classes_pass(settings):
    assert check_permission_classes() == []
    settings.KV = {"READ_PERMISSION_CLASSES": ["tests.test_kv_api.RefuseWithMessage"]}
    assert check_permission_classes() == []


# -- the cache's key space -----------------------------------------------------------------------


@pytest.fixture
def kv_cache():
    from kv.cache import KVCache

    return KVCache("default", {})


@pytest.mark.parametrize("method, action, body", [
    ("put", None, {"value": 1}),
    ("delete", None, None),
    ("post", "incr", {"amount": 1}),
    ("post", "expire", {"ttl": 10}),
    ("post", "expire", {"ttl": 0}),
    ("patch", "hash", {"fields": {"f": 1}}),
])
def test_cache_key_space__writes_400_and_the_entry_is_kept(api, kv_cache, method, action, body):
    kv_cache.set("session", {"user": 1}, 60)
    key = kv_cache.row_key("session")

    response = getattr(api, method)(url(key, action), body, content_type=JSON)

    assert "key space of kv.cache.KVCache" in assert_error(response, 400)
    assert kv_cache.get("session") == {"user": 1}


def test_cache_key_space__a_new_key_there_is_refused_too(api, store):
    assert "key space" in assert_error(api.put(url("cache:default:mine"), {"value": 1}, content_type=JSON), 400)
    assert store.exists("cache:default:mine") == 0


def test_cache_key_space__hidden_on_read(api, kv_cache):
    kv_cache.set("session", 1)

    assert_error(api.get(url(kv_cache.row_key("session"))), 404)


# -- GET /keys/ ---------------------------------------------------------------------------------


def test_list__keys_matching_the_pattern_sorted(api, store):
    store.mset({"user:2": 1, "user:1": 1, "group:1": 1})
    store.hset("user:3", "name", "x")

    response = api.get(url(), {"pattern": "user:*"})

    assert response.status_code == 200
    assert response.json() == {"keys": ["user:1", "user:2", "user:3"], "truncated": False, "next": None}


def test_list__every_key_by_default_without_expired(api, store, clock):
    store.set("a", 1)
    store.set("b", 1, ex=1)
    clock.advance(2)

    assert api.get(url()).json() == {"keys": ["a"], "truncated": False, "next": None}


def test_list__limit_cuts_and_says_so(api, store):
    store.mset({f"k{i:03}": i for i in range(101)})

    default = api.get(url()).json()
    assert len(default["keys"]) == 100 and default["truncated"] is True and default["next"]
    assert api.get(url(), {"limit": 2}).json() == {"keys": ["k000", "k001"], "truncated": True,
                                                   "next": cursor_after("k001")}
    assert len(api.get(url(), {"limit": 1000}).json()["keys"]) == 101


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "abc", "1.5", ""])
def test_list__bad_limit_400(operator, limit):
    assert assert_error(operator.get(url(), {"limit": limit}), 400).startswith("limit: ")


def test_list__nul_in_pattern_400(api):
    assert "pattern" in assert_error(api.get(url(), {"pattern": "a\u0000*"}), 400)


@pytest.fixture
def key_reader(http_on, django_user_model):
    """A staff user allowed to view keys (``kv.view_kventry``) and nothing else, signed in."""
    user = django_user_model.objects.create_user("key-reader", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="kv", codename="view_kventry"))
    reader = Client()
    reader.force_login(user)
    return reader


def test_list__a_pattern_at_the_limits_is_answered(key_reader, store):
    store.mset({"a" * MAX_PATTERN_WILDCARDS: 1, "b": 1, "a" * MAX_PATTERN_LENGTH: 1})

    most_wildcards = key_reader.get(url(), {"pattern": "?" * MAX_PATTERN_WILDCARDS})
    longest = key_reader.get(url(), {"pattern": "a" * MAX_PATTERN_LENGTH})

    assert most_wildcards.json() == {"keys": ["a" * MAX_PATTERN_WILDCARDS], "truncated": False, "next": None}
    assert longest.json() == {"keys": ["a" * MAX_PATTERN_LENGTH], "truncated": False, "next": None}


@pytest.mark.parametrize(("pattern", "limit_name", "limit"), [
    ("a" * (MAX_PATTERN_LENGTH + 1), "MAX_PATTERN_LENGTH", MAX_PATTERN_LENGTH),
    ("?" * (MAX_PATTERN_WILDCARDS + 1), "MAX_PATTERN_WILDCARDS", MAX_PATTERN_WILDCARDS),
    ("*a" * 200 + "b", "MAX_PATTERN_LENGTH", MAX_PATTERN_LENGTH),
], ids=["length", "wildcards", "*a x 200"])
def test_list__a_pattern_past_a_limit_400_naming_it(key_reader, pattern, limit_name, limit):
    detail = assert_error(key_reader.get(url(), {"pattern": pattern}), 400)

    assert f"at most {limit} " in detail and f"kv.sql.glob.{limit_name}" in detail


def test_list__reads_no_more_than_limit_plus_one_keys(api, store):
    store.mset({f"k{i:03}": i for i in range(50)})

    with CaptureQueriesContext(connection) as queries:
        body = api.get(url(), {"pattern": "k*", "limit": 10}).json()

    assert body == {"keys": [f"k{i:03}" for i in range(10)], "truncated": True, "next": cursor_after("k009")}
    # the database stops at the 11th key (SQLite's log shows the parameter's name, not its value)
    assert [query for query in queries if query["sql"].endswith((" LIMIT 11", " LIMIT :rows"))]


def test_list__next_pages_through_every_key_once(api, store):
    store.mset({f"k{i:03}": i for i in range(250)})
    store.set("other", 1)

    pages, cursor = [], "0"
    while cursor is not None:
        body = api.get(url(), {"pattern": "k*", "cursor": cursor}).json()
        pages.append(body["keys"])
        assert body["truncated"] is (body["next"] is not None)
        cursor = body["next"]

    assert [len(page) for page in pages] == [100, 100, 50]
    assert [key for page in pages for key in page] == [f"k{i:03}" for i in range(250)]


def test_list__a_page_reads_at_most_scan_rows_then_says_where_to_go_on(api, store):
    from kv.api.views import SCAN_ROWS

    for start in range(0, SCAN_ROWS + 1, 1000):
        store.mset({f"a{i:05}": i for i in range(start, min(start + 1000, SCAN_ROWS + 1))})
    store.set("zx", 1)

    first = api.get(url(), {"pattern": "*x"}).json()
    second = api.get(url(), {"pattern": "*x", "cursor": first["next"]}).json()

    # the first SCAN_ROWS keys hold no match: an empty page, not the end
    assert first == {"keys": [], "truncated": True, "next": cursor_after(f"a{SCAN_ROWS - 1:05}")}
    assert second == {"keys": ["zx"], "truncated": False, "next": None}


@pytest.mark.parametrize(("cursor", "detail"), [
    ("1", "cursor '1' is not a scan cursor: give 0 to start a scan"),
    ("k!", "cursor 'k!' is not a scan cursor"),
    ("kü", "cursor 'kü' is not a scan cursor"),
    (cursor_after("a\x00"), "is not a scan cursor"),
    ("", "cursor: This field may not be blank."),
], ids=repr)
def test_list__a_malformed_cursor_400(api, cursor, detail):
    assert detail in assert_error(api.get(url(), {"cursor": cursor}), 400)


# -- GET, PUT, DELETE /keys/<key>/ ----------------------------------------------------------------


def test_get__value_with_type_and_ttl(api, store, clock):
    store.set("a", {"n": [1, 2]})
    store.set("b", "x", ex=100)

    assert api.get(url("a")).json() == {"key": "a", "value": {"n": [1, 2]}, "type": "value", "ttl": -1}
    assert api.get(url("b")).json() == {"key": "b", "value": "x", "type": "value", "ttl": 100}


def test_get__hash_shows_its_fields(api, store):
    store.hset("h", mapping={"a": 1, "b": [2]})

    assert api.get(url("h")).json() == {"key": "h", "value": {"a": 1, "b": [2]}, "type": "hash", "ttl": -1}


def test_get__json_null_is_a_value_not_a_missing_key(api, store):
    assert api.put(url("n"), {"value": None}, content_type=JSON).status_code == 200

    assert api.get(url("n")).json() == {"key": "n", "value": None, "type": "value", "ttl": -1}


def test_get__missing_or_expired_404(api, store, clock):
    store.set("gone", 1, ex=1)
    clock.advance(2)

    assert "'missing'" in assert_error(api.get(url("missing")), 404)
    assert_error(api.get(url("gone")), 404)


def test_put__stores_and_returns_the_stored_representation(api, store):
    response = api.put(url("a"), {"value": {"x": [1, "two", None]}}, content_type=JSON)

    assert response.status_code == 200
    assert response.json() == {"key": "a", "value": {"x": [1, "two", None]}, "type": "value", "ttl": -1}
    assert store.get("a") == {"x": [1, "two", None]}
    assert store.ttl("a") == -1


def test_put__ttl_sets_expiry_and_omitting_it_clears_it(api, store, clock):
    response = api.put(url("a"), {"value": 1, "ttl": 60}, content_type=JSON)
    assert response.json()["ttl"] == 60
    assert store.ttl("a") == 60

    api.put(url("a"), {"value": 2}, content_type=JSON)
    assert store.ttl("a") == -1


def test_put__replaces_a_hash(api, store):
    store.hset("h", "f", 1)

    assert api.put(url("h"), {"value": "plain"}, content_type=JSON).status_code == 200
    assert store.type("h") == "value" and store.get("h") == "plain"


@pytest.mark.parametrize("body", [
    {},
    {"ttl": 5},
    {"value": 1, "ttl": 0},
    {"value": 1, "ttl": -3},
    {"value": 1, "ttl": "5"},
    {"value": 1, "ttl": 1.5},
    {"value": 1, "ttl": True},
    {"value": 1, "ttl": 10**11},
    [1, 2],
    {"value": "a\u0000b"},
])
def test_put__bad_body_400_and_nothing_stored(api, store, body):
    assert_error(api.put(url("a"), body, content_type=JSON), 400)
    assert store.exists("a") == 0


def test_put__malformed_json_400(api, store):
    assert "JSON" in assert_error(api.put(url("a"), '{"value": ', content_type=JSON), 400)
    assert store.exists("a") == 0


def test_put__not_json_415(api, store):
    response = api.put(url("a"), "value=1", content_type="application/x-www-form-urlencoded")

    assert_error(response, 415)
    assert store.exists("a") == 0


def test_put__value_over_max_value_size_413(settings, admin_client, store):
    settings.KV = {**ON, "MAX_VALUE_SIZE": 20}

    # the size is that of the JSON the store writes: '"xx...x"', with non-ASCII escaped
    assert admin_client.put(url("a"), {"value": "x" * 18}, content_type=JSON).status_code == 200
    assert admin_client.put(url("u"), {"value": "\u00fc" * 3}, content_type=JSON).status_code == 200
    detail = assert_error(admin_client.put(url("a"), {"value": "x" * 19}, content_type=JSON), 413)
    assert "21 bytes" in detail
    assert store.get("a") == "x" * 18


@pytest.mark.parametrize("key", ["k" * 513, "nul\u0000key"])
def test_put__bad_key_400(api, store, key):
    assert_error(api.put(url(key), {"value": 1}, content_type=JSON), 400)
    assert store.keys() == []


def test_delete__204_and_gone(api, store):
    store.hset("h", "f", 1)

    response = api.delete(url("h"))

    assert response.status_code == 204
    assert response.content == b""
    assert store.exists("h") == 0


def test_delete__missing_404(api):
    assert_error(api.delete(url("missing")), 404)


@pytest.mark.parametrize("path", [url(), url("a"), url("a", "incr"), url("a", "hash")])
def test_options__describes_the_route(api, path):
    response = api.options(path)

    assert response.status_code == 200
    assert response.json()["renders"] == ["application/json"]


def test_post_on_a_key__405(api, store):
    assert_error(api.post(url("a"), {"value": 1}, content_type=JSON), 405)
    assert store.exists("a") == 0


# -- POST /keys/<key>/incr/ ---------------------------------------------------------------------


def test_incr__counts_from_zero_by_one_or_amount(api, store):
    assert api.post(url("c", "incr"), content_type=JSON).json() == {"key": "c", "value": 1}
    assert api.post(url("c", "incr"), {"amount": 10}, content_type=JSON).json() == {"key": "c", "value": 11}
    assert api.post(url("c", "incr"), {"amount": -20}, content_type=JSON).json() == {"key": "c", "value": -9}
    assert store.get("c") == -9


def test_incr__keeps_the_ttl(api, store, clock):
    store.set("c", 5, ex=100)

    api.post(url("c", "incr"), {}, content_type=JSON)

    assert store.get("c") == 6 and store.ttl("c") == 100


@pytest.mark.parametrize("amount", [-INT64_MAX - 1, INT64_MAX])
def test_incr__the_extreme_amounts_on_a_missing_key(operator, store, amount):
    response = operator.post(url("c", "incr"), {"amount": amount}, content_type=JSON)

    assert response.status_code == 200 and response.json() == {"key": "c", "value": amount}
    assert store.get("c") == amount
    assert store.hincrby("h", "f", amount) == amount  # the hash's counters alike


@pytest.mark.parametrize("amount", ["5", 1.5, True, None, INT64_MAX + 1, [1]])
def test_incr__non_integer_amount_400(api, store, amount):
    store.set("c", 1)

    assert "amount" in assert_error(api.post(url("c", "incr"), {"amount": amount}, content_type=JSON), 400)
    assert store.get("c") == 1


@pytest.mark.parametrize("setup", [
    lambda store: store.set("c", "abc"),
    lambda store: store.set("c", 1.5),
    lambda store: store.hset("c", "f", 1),
    lambda store: store.set("c", INT64_MAX),
])
def test_incr__not_an_integer_wrong_type_or_overflow_409(api, store, setup):
    setup(store)
    before = store.type("c")

    assert "'c'" in assert_error(api.post(url("c", "incr"), {"amount": 1}, content_type=JSON), 409)
    assert store.type("c") == before


# -- POST /keys/<key>/expire/ -------------------------------------------------------------------


def test_expire__sets_the_ttl(api, store, clock):
    store.set("a", 1)

    response = api.post(url("a", "expire"), {"ttl": 50}, content_type=JSON)

    assert response.status_code == 200
    assert response.json() == {"key": "a", "ttl": 50}
    assert store.ttl("a") == 50
    clock.advance(51)
    assert store.exists("a") == 0


@pytest.mark.parametrize("ttl", [0, -1])
def test_expire__zero_or_less_deletes(api, store, ttl):
    store.hset("h", "f", 1)

    response = api.post(url("h", "expire"), {"ttl": ttl}, content_type=JSON)

    assert response.json() == {"key": "h", "ttl": -2}
    assert store.exists("h") == 0


@pytest.mark.parametrize("ttl", [5, 0])
def test_expire__missing_key_404(api, ttl):
    assert_error(api.post(url("missing", "expire"), {"ttl": ttl}, content_type=JSON), 404)


@pytest.mark.parametrize("body", [{}, {"ttl": "10"}, {"ttl": 2.5}, {"ttl": None}, {"ttl": 10**11}])
def test_expire__bad_ttl_400(api, store, body):
    store.set("a", 1)

    assert_error(api.post(url("a", "expire"), body, content_type=JSON), 400)
    assert store.ttl("a") == -1


# -- GET, PATCH /keys/<key>/hash/ ---------------------------------------------------------------


def test_hash_get__every_field(api, store):
    store.hset("h", mapping={"a": 1, "b": {"c": None}})

    assert api.get(url("h", "hash")).json() == {"key": "h", "fields": {"a": 1, "b": {"c": None}}}


def test_hash_get__missing_404_and_value_409(api, store):
    store.set("v", 1)

    assert_error(api.get(url("missing", "hash")), 404)
    assert "'v'" in assert_error(api.get(url("v", "hash")), 409)


def test_hash_patch__creates_then_merges_fields(api, store):
    first = api.patch(url("h", "hash"), {"fields": {"a": 1, "b": 2}}, content_type=JSON)
    assert first.status_code == 200
    assert first.json() == {"key": "h", "fields": {"a": 1, "b": 2}, "added": 2}

    second = api.patch(url("h", "hash"), {"fields": {"b": 20, "c": None}}, content_type=JSON)
    assert second.json() == {"key": "h", "fields": {"a": 1, "b": 20, "c": None}, "added": 1}
    assert store.hgetall("h") == {"a": 1, "b": 20, "c": None}


@pytest.mark.parametrize("body", [{}, {"fields": {}}, {"fields": [1]}, {"fields": "a"}, {"a": 1}])
def test_hash_patch__bad_body_400(api, store, body):
    assert_error(api.patch(url("h", "hash"), body, content_type=JSON), 400)
    assert store.exists("h") == 0


def test_hash_patch__on_a_value_409(api, store):
    store.set("v", 1)

    assert_error(api.patch(url("v", "hash"), {"fields": {"a": 1}}, content_type=JSON), 409)
    assert store.get("v") == 1


def test_hash_patch__over_max_value_size_413(settings, admin_client, store):
    settings.KV = {**ON, "MAX_VALUE_SIZE": 20}

    assert_error(admin_client.patch(url("h", "hash"), {"fields": {"f": "x" * 20}}, content_type=JSON), 413)
    assert store.exists("h") == 0


# -- keys in the path ---------------------------------------------------------------------------

KEYS = ["a/b", "50%", "sp ace", "\u00fcn\u00ef", "a%2Fb", "/lead", "trail/", "a//b", "q?x=1#f",
        "plus+sign", "new\nline", "x/incr", "x/expire", "x/hash", "\u65e5\u672c"]


@pytest.mark.parametrize("key", KEYS)
def test_keys__url_encoded_round_trip(api, store, key):
    response = api.put(url(key), {"value": key}, content_type=JSON)

    assert response.status_code == 200, response.content
    assert response.json()["key"] == key
    assert store.get(key) == key
    assert store.keys() == [key]
    assert api.get(url()).json()["keys"] == [key]
    assert api.post(url(key, "incr"), content_type=JSON).status_code == 409  # the action finds the key
    assert api.delete(url(key)).status_code == 204
    assert store.exists(key) == 0


@pytest.mark.parametrize("key", ["a/b", "50%", "sp ace", "\u00fcn\u00ef"])
def test_keys__reverse_gives_urls_that_resolve_to_the_key(api, store, key):
    store.set(key, 1)

    detail = reverse("kv:key-detail", kwargs={"key": key})
    incr = reverse("kv:key-incr", kwargs={"key": key})

    assert api.get(detail).json()["key"] == key
    assert api.post(incr, content_type=JSON).json() == {"key": key, "value": 2}


def test_keys__action_suffix_in_a_key_name(api, store):
    """``.../incr/`` is also the URL of the key "<key>/incr": methods the action lacks go to that key."""
    store.set("c", 1)

    assert api.put("/api/kv/keys/c/incr/", {"value": "named"}, content_type=JSON).status_code == 200
    assert api.get("/api/kv/keys/c/incr/").json()["value"] == "named"
    assert api.post("/api/kv/keys/c/incr/", content_type=JSON).json() == {"key": "c", "value": 2}
    assert store.get("c/incr") == "named"
    assert api.delete("/api/kv/keys/c/incr/").status_code == 204
    assert store.exists("c/incr") == 0 and store.get("c") == 2
    assert_error(api.patch("/api/kv/keys/c/incr/", {}, content_type=JSON), 405)


def test_keys__get_hash_suffix_reads_the_hash(api, store):
    """The one ambiguous URL: GET .../x/hash/ reads the hash "x", not the key "x/hash"."""
    store.hset("x", "f", 1)
    store.set("x/hash", "plain")

    assert api.get("/api/kv/keys/x/hash/").json() == {"key": "x", "fields": {"f": 1}}
    assert api.put("/api/kv/keys/x/hash/", {"value": "new"}, content_type=JSON).status_code == 200
    assert store.get("x/hash") == "new"


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("error, message, status", [
    (ValueTooLarge, "hash 'h' would pass KV['MAX_VALUE_SIZE'] (60 bytes) with these fields", 413),
    (InvalidValue, "mapping for key 'h' must be a dict", 400),
])
def test_store_invalid_value__size_413_anything_else_400(api, store, monkeypatch, error, message, status):
    def refuse(self, key, field=None, value=None, mapping=None):
        raise error(message)

    monkeypatch.setattr(type(store), "hset", refuse)

    assert assert_error(api.patch(url("h", "hash"), {"fields": {"a": 1}}, content_type=JSON), status) == message


def test_unexpected_error__json_500_without_traceback(api, store, monkeypatch):
    def broken(self, key):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(type(store), "inspect", broken)

    detail = assert_error(api.get(url("a")), 500)
    assert "fire" not in detail


# -- OpenAPI schema -----------------------------------------------------------------------------

KV_PATHS = {"/api/kv/keys/": {"get"}, "/api/kv/keys/{key}/": {"get", "put", "delete"},
            "/api/kv/keys/{key}/incr/": {"post"}, "/api/kv/keys/{key}/expire/": {"post"},
            "/api/kv/keys/{key}/hash/": {"get", "patch"}}


def schema_paths(client) -> dict[str, set[str]]:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return {path: set(methods) - {"parameters"} for path, methods in response.json()["paths"].items()}


def test_schema__lists_the_kv_paths_and_methods(api):
    paths = schema_paths(api)

    assert {path: methods for path, methods in paths.items() if path.startswith("/api/kv/")} == KV_PATHS


def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_schema__hash_patch_body_requires_fields(operator):
    document = schema(operator)
    body = document["paths"]["/api/kv/keys/{key}/hash/"]["patch"]["requestBody"]

    ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert body["required"] is True
    assert document["components"]["schemas"][ref]["required"] == ["fields"]


def test_schema__limit_bounded_as_the_api_checks_it(operator):
    parameters = schema(operator)["paths"]["/api/kv/keys/"]["get"]["parameters"]

    limit = next(parameter["schema"] for parameter in parameters if parameter["name"] == "limit")
    assert (limit["type"], limit["minimum"], limit["maximum"]) == ("integer", 1, 1000)


def test_schema__the_list_takes_a_cursor_and_gives_next(operator):
    document = schema(operator)
    operation = document["paths"]["/api/kv/keys/"]["get"]

    assert "cursor" in [parameter["name"] for parameter in operation["parameters"]]
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert document["components"]["schemas"][ref]["properties"]["next"]["nullable"] is True


@pytest.mark.parametrize("path, method", [("/api/kv/keys/", "get"), ("/api/kv/keys/{key}/", "get"),
                                          ("/api/kv/keys/{key}/", "put"), ("/api/kv/keys/{key}/", "delete"),
                                          ("/api/kv/keys/{key}/incr/", "post"),
                                          ("/api/kv/keys/{key}/expire/", "post"),
                                          ("/api/kv/keys/{key}/hash/", "get"),
                                          ("/api/kv/keys/{key}/hash/", "patch")])
def test_schema__every_operation_documents_the_400_of_a_nul(operator, path, method):
    assert "400" in schema(operator)["paths"][path][method]["responses"]


def test_schema__staff_only(http_on, client, user_client):
    assert_error(client.get("/api/schema/", {"format": "json"}), 403)
    assert_error(user_client.get("/api/schema/", {"format": "json"}), 403)


def test_schema__no_kv_paths_while_they_answer_404(admin_client, settings):
    assert not [path for path in schema_paths(admin_client) if path.startswith("/api/kv/")]

    settings.KV = ON
    disable_in_registry("kv")
    assert not [path for path in schema_paths(admin_client) if path.startswith("/api/kv/")]
