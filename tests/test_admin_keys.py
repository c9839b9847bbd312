"""The key browser: glob search, JSON edits through the store, TTLs, hashes, deletes, rights."""

from __future__ import annotations

import html
import json

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.urls import reverse

import kv
from kv.models import KVEntry
from kv.sql.glob import MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS

pytestmark = pytest.mark.django_db

LIST = "admin:kv_kventry_changelist"


@pytest.fixture
def store():
    return kv.get_store()


def change_url(key: str) -> str:
    return reverse("admin:kv_kventry_change", args=[quote(key)])


def delete_url(key: str) -> str:
    return reverse("admin:kv_kventry_delete", args=[quote(key)])


def listed(client, pattern: str | None = None) -> list[str]:
    """The keys the list shows (for a search ``pattern``), in order."""
    response = client.get(reverse(LIST), {"q": pattern} if pattern is not None else {})
    assert response.status_code == 200
    return [entry.key for entry in response.context["cl"].result_list]


def edit(client, key: str, value: str, **extra: str):
    return client.post(change_url(key), {"json_value": value, "ttl": "", **extra})


def form_errors(response) -> dict[str, list[str]]:
    return response.context["adminform"].form.errors


@pytest.fixture
def non_staff(client):
    client.force_login(User.objects.create_user("visitor", password="pw"))
    return client


@pytest.fixture
def staff_without_rights(client):
    client.force_login(User.objects.create_user("clerk", password="pw", is_staff=True))
    return client


# -- the list --------------------------------------------------------------------------------


def test_list__shows_type_value_preview_and_ttl(admin_client, store, clock):
    store.set("greeting", {"text": "hello"}, ex=90)
    store.hset("user:1", mapping={"name": "Ada"})
    page = admin_client.get(reverse(LIST)).content.decode()
    assert listed(admin_client) == ["greeting", "user:1"]
    assert "90 s" in page and "no expiry" in page
    assert html.escape('{"text": "hello"}') in page and "hash" in page


def test_list__hides_expired_keys(admin_client, store, clock):
    store.set("short", 1, ex=5)
    store.set("long", 1, ex=50)
    clock.advance(10)
    assert listed(admin_client) == ["long"]
    assert KVEntry.objects.filter(key="short").exists()  # the row is there, expired
    assert admin_client.get(change_url("short")).status_code == 302  # "does not exist"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("user:*", ["user:1", "user:10", "user:2"]),
    ("user:?", ["user:1", "user:2"]),
    ("user:[1-1]*", ["user:1", "user:10"]),
    ("[a-m]*", ["a%b", "a_b", "axb"]),
    ("a%b", ["a%b"]),
    ("a_b", ["a_b"]),
    ("a?b", ["a%b", "a_b", "axb"]),
    ("*%*", ["a%b", "percent%"]),
    ("user", []),
    ("user:\\*", []),
])
def test_search__takes_a_redis_glob_pattern(admin_client, store, pattern, expected):
    for key in ["user:1", "user:2", "user:10", "a%b", "a_b", "axb", "percent%", "session:x"]:
        store.set(key, 1)
    assert listed(admin_client, pattern) == expected
    assert store.keys(pattern) == expected  # the same semantics as the store


@pytest.fixture
def key_viewer(client):
    """A staff user with the view permission on keys only, signed in."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(content_type__app_label="kv", codename="view_kventry"))
    client.force_login(user)
    return client


def page_messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_search__a_pattern_at_the_limits_is_answered(key_viewer, store):
    store.mset({"a" * MAX_PATTERN_WILDCARDS: 1, "b": 1, "a" * MAX_PATTERN_LENGTH: 1})

    assert listed(key_viewer, "?" * MAX_PATTERN_WILDCARDS) == ["a" * MAX_PATTERN_WILDCARDS]
    assert listed(key_viewer, "a" * MAX_PATTERN_LENGTH) == ["a" * MAX_PATTERN_LENGTH]


@pytest.mark.parametrize(("pattern", "limit_name", "limit"), [
    ("a" * (MAX_PATTERN_LENGTH + 1), "MAX_PATTERN_LENGTH", MAX_PATTERN_LENGTH),
    ("?" * (MAX_PATTERN_WILDCARDS + 1), "MAX_PATTERN_WILDCARDS", MAX_PATTERN_WILDCARDS),
], ids=["length", "wildcards"])
def test_search__a_pattern_past_a_limit_lists_nothing_and_says_the_limit(key_viewer, store, pattern, limit_name,
                                                                        limit):
    store.set("a" * MAX_PATTERN_WILDCARDS, 1)

    response = key_viewer.get(reverse(LIST), {"q": pattern})

    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []
    (message,) = page_messages(response)
    assert message.startswith("Search refused: ") and f"at most {limit} " in message
    assert f"kv.sql.glob.{limit_name}" in message
    assert html.escape(message) in response.content.decode()


# -- pages -------------------------------------------------------------------------------------


def page(client, params: dict | str | None = None):
    """The list's response for ``params`` (a dict, or a query string such as a page link)."""
    url = reverse(LIST) + (params if isinstance(params, str) else "")
    response = client.get(url, params if isinstance(params, dict) else {})
    assert response.status_code == 200
    return response


def page_keys(response) -> list[str]:
    return [entry.key for entry in response.context["cl"].result_list]


def write_many(store, keys: list[str]) -> None:
    for start in range(0, len(keys), 1000):
        store.mset(dict.fromkeys(keys[start:start + 1000], 1))


def test_pages__next_page_links_go_through_every_key_once(admin_client, store):
    write_many(store, [f"k{i:03}" for i in range(230)])

    first = page(admin_client)
    second = page(admin_client, first.context["cl"].next_page_url)
    third = page(admin_client, second.context["cl"].next_page_url)

    assert page_keys(first) + page_keys(second) + page_keys(third) == [f"k{i:03}" for i in range(230)]
    assert [len(page_keys(response)) for response in (first, second, third)] == [100, 100, 30]
    assert third.context["cl"].next_page_url is None
    assert 'class="kv-next-page"' in second.content.decode() and 'class="kv-next-page"' not in third.content.decode()
    assert first.context["cl"].first_page_url is None
    assert page_keys(page(admin_client, third.context["cl"].first_page_url)) == page_keys(first)


def test_pages__no_count_of_the_table_or_the_matches(admin_client, store):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    write_many(store, [f"user:{i}" for i in range(150)])

    with CaptureQueriesContext(connection) as queries:
        page(admin_client)
        page(admin_client, {"q": "user:*"})
        page(admin_client, {"q": "user:*", "type__exact": "value"})

    assert not [query["sql"] for query in queries if "COUNT(" in query["sql"].upper()]


def test_pages__the_next_page_of_a_search_and_a_filter_keeps_them(admin_client, store):
    write_many(store, [f"user:{i:03}" for i in range(120)] + ["other"])
    store.hset("user:h", "f", 1)

    first = page(admin_client, {"q": "user:*", "type__exact": "value"})
    second = page(admin_client, first.context["cl"].next_page_url)

    assert page_keys(first) + page_keys(second) == [f"user:{i:03}" for i in range(120)]
    assert page_keys(page(admin_client, {"type__exact": "hash"})) == ["user:h"]


def test_pages__another_search_starts_on_the_first_page(admin_client, store):
    write_many(store, [f"k{i:03}" for i in range(150)])
    second = page(admin_client, page(admin_client).context["cl"].next_page_url)

    form = second.content.decode().split('id="changelist-search"', 1)[1].split("</form>", 1)[0]

    assert 'name="cursor"' not in form  # the search form does not send the page along
    assert "cursor=" not in second.context["cl"].get_query_string({"q": "k1*"})


def test_pages__a_malformed_cursor_shows_the_first_page_and_says_so(admin_client, store):
    write_many(store, ["a", "b"])

    response = page(admin_client, {"cursor": "k!"})

    assert page_keys(response) == ["a", "b"]
    (message,) = page_messages(response)
    assert message.startswith("cursor 'k!' is not a scan cursor") and message.endswith("This is the first page.")


def test_pages__cache_rows_are_listed_and_filtered_by_type(admin_client, store, settings):
    from django.core.cache import caches

    settings.CACHES = {**settings.CACHES, "kvtest": {"BACKEND": "kv.cache.KVCache"}}
    caches["kvtest"].set("page", "<html>")
    store.set("mine", 1)
    cache_key = KVEntry.objects.get(type="cache").key

    assert listed(admin_client) == sorted([cache_key, "mine"])
    assert page_keys(page(admin_client, {"type__exact": "cache"})) == [cache_key]


def test_pages__a_search_reads_only_the_keys_under_its_literal_prefix(admin_client, store):
    from plugins_admin.admin.key_pages import KeyPages

    write_many(store, [f"a{i:05}" for i in range(KeyPages.rows_per_page + 1)] + ["b1", "b2"])

    response = page(admin_client, {"q": "b*"})

    # the rows before "b" are not read: a page of rows_per_page would hold no "b" key
    assert page_keys(response) == ["b1", "b2"] and response.context["cl"].next_page_url is None


def test_pages__a_page_reads_rows_per_page_rows_at_most_and_says_so(admin_client, store):
    from plugins_admin.admin.key_pages import KeyPages

    write_many(store, [f"a{i:05}" for i in range(KeyPages.rows_per_page + 1)] + ["zx"])

    first = page(admin_client, {"q": "*x"})
    second = page(admin_client, first.context["cl"].next_page_url)

    assert page_keys(first) == [] and first.context["cl"].short_page
    assert f"A page reads {KeyPages.rows_per_page} keys at most" in first.content.decode()
    assert page_keys(second) == ["zx"] and second.context["cl"].next_page_url is None


# -- editing ---------------------------------------------------------------------------------


def test_change_page__shows_the_value_as_formatted_json(admin_client, store):
    store.set("doc", {"a": [1, 2], "b": "é"}, ex=100)
    response = admin_client.get(change_url("doc"))
    assert response.status_code == 200
    initial = response.context["adminform"].form["json_value"].value()
    assert initial == json.dumps({"a": [1, 2], "b": "é"}, indent=2, ensure_ascii=False)
    assert "100 s" in response.content.decode()


def test_edit__invalid_json_is_refused_with_the_parse_error(admin_client, store):
    store.set("doc", {"a": 1}, ex=100)
    response = edit(admin_client, "doc", '{"a": 1,\n "b" 2}')
    assert response.status_code == 200
    error = form_errors(response)["json_value"][0]
    assert error == "Invalid JSON: Expecting ':' delimiter: line 2 column 6 (char 14)"
    assert html.escape(error) in response.content.decode()
    assert store.get("doc") == {"a": 1}
    assert 95 <= store.ttl("doc") <= 100


def test_edit__nan_is_refused(admin_client, store):
    store.set("doc", 1)
    response = edit(admin_client, "doc", "NaN")
    assert "NaN is not a JSON value" in form_errors(response)["json_value"][0]
    assert store.get("doc") == 1


def test_edit__valid_json_is_stored_and_keeps_the_ttl(admin_client, store, clock):
    store.set("doc", {"a": 1}, ex=100)
    response = edit(admin_client, "doc", '{"a": 2, "list": [true, null]}')
    assert response.status_code == 302
    assert store.get("doc") == {"a": 2, "list": [True, None]}
    assert store.ttl("doc") == 100


def test_edit__a_value_too_large_is_refused(admin_client, store, settings):
    settings.KV = {"MAX_VALUE_SIZE": 100}
    store.set("doc", "small")
    response = edit(admin_client, "doc", json.dumps("x" * 200))
    assert "MAX_VALUE_SIZE" in form_errors(response)["json_value"][0]
    assert store.get("doc") == "small"


def test_edit__sets_a_ttl(admin_client, store, clock):
    store.set("doc", "v")
    assert edit(admin_client, "doc", '"v"', ttl="30").status_code == 302
    assert store.ttl("doc") == 30 and store.get("doc") == "v"


def test_edit__sets_a_ttl_with_a_new_value(admin_client, store, clock):
    store.set("doc", "v", ex=500)
    assert edit(admin_client, "doc", '"w"', ttl="30").status_code == 302
    assert store.ttl("doc") == 30 and store.get("doc") == "w"


@pytest.mark.parametrize("value", ['"v"', '"changed"'])
def test_edit__removes_the_ttl(admin_client, store, value):
    store.set("doc", "v", ex=500)
    assert edit(admin_client, "doc", value, remove_ttl="on").status_code == 302
    assert store.ttl("doc") == -1 and store.get("doc") == json.loads(value)


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_edit__refuses_a_ttl_that_is_not_a_positive_integer(admin_client, store, ttl):
    store.set("doc", "v")
    response = edit(admin_client, "doc", '"w"', ttl=ttl)
    assert "ttl" in form_errors(response)
    assert store.get("doc") == "v" and store.ttl("doc") == -1


def test_edit__refuses_setting_and_removing_the_ttl_at_once(admin_client, store):
    store.set("doc", "v", ex=500)
    response = edit(admin_client, "doc", '"w"', ttl="5", remove_ttl="on")
    assert response.status_code == 200
    assert store.get("doc") == "v" and store.ttl("doc") > 5


def test_edit__a_hash_is_replaced(admin_client, store, clock):
    store.hset("user:1", mapping={"name": "Ada", "logins": 3, "old": True})
    store.expire("user:1", 60)
    response = edit(admin_client, "user:1", '{"name": "Ada L.", "logins": 4}')
    assert response.status_code == 302
    assert store.hgetall("user:1") == {"name": "Ada L.", "logins": 4}
    assert store.type("user:1") == "hash" and store.ttl("user:1") == 60
    assert store.hincrby("user:1", "logins") == 5  # still a working hash


@pytest.mark.parametrize("value", ["[1, 2]", '"text"', "{}"])
def test_edit__a_hash_needs_a_json_object_with_fields(admin_client, store, value):
    store.hset("user:1", mapping={"name": "Ada"})
    response = edit(admin_client, "user:1", value)
    assert response.status_code == 200 and "json_value" in form_errors(response)
    assert store.hgetall("user:1") == {"name": "Ada"}


def test_edit__a_key_with_slashes_spaces_and_underscores(admin_client, store):
    key = "files/2024 reports/a_b:c%d?"
    store.set(key, [1])
    assert admin_client.get(change_url(key)).status_code == 200
    assert edit(admin_client, key, "[1, 2]").status_code == 302
    assert store.get(key) == [1, 2]
    assert listed(admin_client, "files/2024 *") == [key]


def test_edit__cache_entries_are_read_only(admin_client, store, settings):
    from django.core.cache import caches

    settings.CACHES = {**settings.CACHES, "kvtest": {"BACKEND": "kv.cache.KVCache"}}
    caches["kvtest"].set("page", "<html>")
    entry = KVEntry.objects.get(type="cache")
    response = admin_client.get(change_url(entry.key))
    assert response.status_code == 200 and 'name="json_value"' not in response.content.decode()
    before = KVEntry.objects.get(pk=entry.key).value
    assert admin_client.post(change_url(entry.key), {"json_value": '"x"'}).status_code == 403
    assert KVEntry.objects.get(pk=entry.key).value == before


# -- adding and deleting ---------------------------------------------------------------------


def test_add__a_value_with_a_ttl(admin_client, store, clock):
    response = admin_client.post(reverse("admin:kv_kventry_add"),
                                 {"new_key": "new/key", "new_type": "value", "json_value": '{"x": 1}', "ttl": "40"})
    assert response.status_code == 302
    assert store.get("new/key") == {"x": 1} and store.ttl("new/key") == 40


def test_add__a_hash(admin_client, store):
    response = admin_client.post(reverse("admin:kv_kventry_add"),
                                 {"new_key": "h", "new_type": "hash", "json_value": '{"f": 1}', "ttl": ""})
    assert response.status_code == 302
    assert store.hgetall("h") == {"f": 1} and store.ttl("h") == -1


def test_add__refuses_an_existing_key_and_invalid_json(admin_client, store):
    store.set("taken", 1)
    response = admin_client.post(reverse("admin:kv_kventry_add"),
                                 {"new_key": "taken", "new_type": "value", "json_value": "2", "ttl": ""})
    assert "new_key" in response.context["adminform"].form.errors
    response = admin_client.post(reverse("admin:kv_kventry_add"),
                                 {"new_key": "fresh", "new_type": "value", "json_value": "{", "ttl": ""})
    assert "line 1 column 2" in response.context["adminform"].form.errors["json_value"][0]
    assert store.get("taken") == 1 and store.exists("fresh") == 0


def test_delete__through_the_confirmation_page(admin_client, store):
    key = "to go/with space"
    store.set(key, 1)
    assert store.get(key) == 1  # in L1 now: the delete must drop it there too
    assert admin_client.get(delete_url(key)).status_code == 200
    assert store.exists(key) == 1
    assert admin_client.post(delete_url(key), {"post": "yes"}).status_code == 302
    assert store.exists(key) == 0 and store.get(key) is None


def test_delete__the_bulk_action(admin_client, store):
    for key in ["a", "b", "c"]:
        store.set(key, 1)
    assert store.get("a") == 1
    response = admin_client.post(reverse(LIST), {"action": "delete_selected", "_selected_action": ["a", "b"],
                                                 "post": "yes"})
    assert response.status_code == 302
    assert store.keys() == ["c"] and store.get("a") is None


# -- rights ----------------------------------------------------------------------------------


def test_get__never_changes_anything(admin_client, store):
    store.set("doc", {"a": 1}, ex=100)
    before = list(KVEntry.objects.values_list("key", "value", "expire_at"))
    assert admin_client.get(reverse(LIST), {"q": "*"}).status_code == 200
    for url in [change_url("doc"), delete_url("doc"), reverse("admin:kv_kventry_add")]:
        assert admin_client.get(url, {"json_value": "2", "ttl": "5", "remove_ttl": "on", "post": "yes"}).status_code == 200
    assert list(KVEntry.objects.values_list("key", "value", "expire_at")) == before


@pytest.mark.parametrize("who", ["anonymous", "non_staff", "staff_without_rights"])
def test_rights__others_get_no_page_and_change_nothing(request, client, store, who):
    if who != "anonymous":
        request.getfixturevalue(who)
    store.set("doc", {"a": 1}, ex=100)
    before = list(KVEntry.objects.values_list("key", "value", "expire_at"))
    for url in [reverse(LIST), change_url("doc"), delete_url("doc"), reverse("admin:kv_kventry_add")]:
        response = client.get(url)
        assert response.status_code in (302, 403)
        assert response.status_code == 403 or "/admin/login/" in response["Location"]
    posts = [
        (change_url("doc"), {"json_value": "2", "remove_ttl": "on"}),
        (delete_url("doc"), {"post": "yes"}),
        (reverse("admin:kv_kventry_add"), {"new_key": "x", "new_type": "value", "json_value": "1"}),
        (reverse(LIST), {"action": "delete_selected", "_selected_action": ["doc"], "post": "yes"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code in (302, 403)
    assert list(KVEntry.objects.values_list("key", "value", "expire_at")) == before


def test_csrf__a_post_without_the_token_is_refused(store, django_user_model):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("root", password="pw"))
    store.set("doc", 1)
    assert client.post(change_url("doc"), {"json_value": "2", "ttl": ""}).status_code == 403
    assert client.post(delete_url("doc"), {"post": "yes"}).status_code == 403
    assert store.get("doc") == 1


@pytest.mark.django_db(transaction=True)
def test_writes__go_through_the_store_and_drop_the_cached_value(admin_client, store):
    # outside a test transaction, reads fill this process's L1: an ORM write would leave it stale
    store.set("cached", "old")
    store.set("gone", "old")
    assert store.get("cached") == "old" and store.get("gone") == "old"
    assert edit(admin_client, "cached", '"new"').status_code == 302
    assert admin_client.post(delete_url("gone"), {"post": "yes"}).status_code == 302
    assert store.get("cached") == "new"
    assert store.get("gone") is None
