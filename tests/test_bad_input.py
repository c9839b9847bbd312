"""Bad input over HTTP and in the admin's key form: a clear 4xx (or form error), never a 500,
and nothing stored.

Lone surrogates, JSON nested deeper than ``MAX_JSON_DEPTH``, malformed JSON, bodies over
``DATA_UPLOAD_MAX_MEMORY_SIZE``, TTLs over the API's cap, and keys holding the six characters
``\\u0000``, through the kv and jobs APIs and the demo's notes API (one body parser for all),
by a superuser and by a staff user with only the model permissions the pages ask for. The
stores' own refusals are in ``test_kv_store.py`` and ``test_jobs_store.py``.
"""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest
from django.contrib.admin.utils import quote as admin_quote
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from rest_framework.exceptions import ParseError
from rest_framework.test import APIClient

import jobs
import kv
from demo.notes.models import Note
from jobs.dispatcher import Dispatcher
from jobs.models import Job
from kv.models import KVEntry
from kv.validation import MAX_TTL
from tachycore.jsontext import MAX_JSON_DEPTH, text_too_deep
from tachycore.manager import plugin_manager
from tachycore.parsers import MAX_BODY_DEPTH, BodyTooLarge, JSONBodyParser

pytestmark = pytest.mark.django_db

JSON = "application/json"
#: a payload or value in JSON text, holding a lone surrogate as JSON escapes it
SURROGATE_TEXT = '"a\\ud800b"'


def fill(template: str, inner: str) -> str:
    """``template`` with ``inner`` in place of its "@"."""
    return template.replace("@", inner)


def nested(depth: int) -> str:
    """JSON text of arrays nested ``depth`` levels deep around 1 (``[[1]]`` is 2)."""
    return "[" * depth + "1" + "]" * depth


# -- users ------------------------------------------------------------------------------------

KV_PERMISSIONS = ["view_kventry", "add_kventry", "change_kventry", "delete_kventry"]
JOB_PERMISSIONS = ["view_job", "add_job", "change_job", "delete_job"]


def staff_with_permissions() -> User:
    """A staff user holding the kv and jobs model permissions, and nothing more."""
    user = User.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="kv", codename__in=KV_PERMISSIONS))
    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label="jobs", codename__in=JOB_PERMISSIONS))
    return user


@pytest.fixture(params=["superuser", "staff"])
def user(request, admin_user) -> User:
    return admin_user if request.param == "superuser" else staff_with_permissions()


@pytest.fixture
def api(settings, user) -> APIClient:
    """The user's API client, with both HTTP APIs switched on."""
    settings.KV = {"HTTP_ENABLED": True}
    settings.JOBS = {"HTTP_ENABLED": True}
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def browser(user) -> Client:
    """The user's admin session."""
    client = Client()
    client.force_login(user)
    return client


def send(client, method: str, path: str, body: str | bytes):
    return getattr(client, method)(path, data=body, content_type=JSON)


def refused(response, status: int, *words: str) -> str:
    """The JSON detail of a refusal with ``status``, checked to name each of ``words``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(JSON)
    detail = response.json()["detail"]
    assert isinstance(detail, str) and b"Traceback" not in response.content
    for word in words:
        assert word in detail, detail
    return detail


def kv_url(key: str, action: str | None = None) -> str:
    return f"/api/kv/keys/{quote(key, safe='')}/" + (f"{action}/" if action else "")


def assert_jobs_list_works(api) -> None:
    response = api.get("/api/jobs/")
    assert response.status_code == 200, response.content


# -- lone surrogates --------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    fill('{"topic": "toolbox.echo", "payload": @}', SURROGATE_TEXT),
    '{"topic": "toolbox.echo", "payload": "\\uDBFF"}',
    '{"topic": "toolbox.echo", "payload": {"a\\udc00": 1}}',
    '{"topic": "toolbox.echo", "payload": [{"deep": ["\\ud800"]}]}',
    '{"topic": "toolbox.\\ud800"}',
    '{"topic": "toolbox.echo", "dedupe_key": "\\udfff"}',
], ids=["payload-string", "upper-case-escape", "payload-key", "payload-nested", "topic", "dedupe-key"])
def test_jobs_api__a_lone_surrogate_is_400_and_the_list_still_works(api, body):
    refused(send(api, "post", "/api/jobs/", body), 400, "lone surrogate")

    assert not Job.objects.exists()
    assert_jobs_list_works(api)


def test_jobs_api__a_surrogate_pair_is_one_character_and_stored(api):
    response = send(api, "post", "/api/jobs/", '{"topic": "toolbox.echo", "payload": "\\ud83d\\ude00"}')

    assert response.status_code == 201, response.content
    assert Job.objects.get().payload == "\U0001f600"
    assert api.get("/api/jobs/").json()["results"][0]["payload"] == "\U0001f600"


def test_jobs_api__utf8_bytes_of_a_surrogate_are_400(api):
    body = b'{"topic": "toolbox.echo", "payload": "\xed\xa0\x80"}'  # not UTF-8: no code point has them

    refused(send(api, "post", "/api/jobs/", body), 400, "JSON parse error")
    assert not Job.objects.exists()


@pytest.mark.parametrize("method, action, body", [
    ("put", None, fill('{"value": @}', SURROGATE_TEXT)),
    ("put", None, '{"value": {"\\ud800": 1}}'),
    ("patch", "hash", fill('{"fields": {"f": @}}', SURROGATE_TEXT)),
    ("patch", "hash", '{"fields": {"\\udc00": 1}}'),
], ids=["value", "value-key", "hash-value", "hash-field"])
def test_kv_api__a_lone_surrogate_is_400_nothing_stored(api, method, action, body):
    refused(send(api, method, kv_url("k", action), body), 400, "lone surrogate")

    assert not KVEntry.objects.exists()


# -- nesting ----------------------------------------------------------------------------------

def test_limits__a_body_may_be_one_level_deeper_than_the_values_it_carries():
    assert MAX_JSON_DEPTH == 100 and MAX_BODY_DEPTH == MAX_JSON_DEPTH + 1


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_jobs_api__a_payload_nested_over_the_limit_is_400(api, depth):
    body = fill('{"topic": "toolbox.echo", "payload": @}', nested(depth))

    refused(send(api, "post", "/api/jobs/", body), 400, "nested too deeply", str(MAX_BODY_DEPTH))
    assert not Job.objects.exists()
    assert_jobs_list_works(api)


def test_jobs_api__a_payload_at_the_limit_is_stored(api):
    body = fill('{"topic": "toolbox.echo", "payload": @}', nested(MAX_JSON_DEPTH))

    response = send(api, "post", "/api/jobs/", body)

    assert response.status_code == 201, response.content
    assert Job.objects.get().payload == json.loads(nested(MAX_JSON_DEPTH))
    assert_jobs_list_works(api)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
@pytest.mark.parametrize("method, action, envelope", [
    ("put", None, '{"value": @}'),
    ("patch", "hash", '{"fields": {"f": @}}'),
], ids=["value", "hash"])
def test_kv_api__a_value_nested_over_the_limit_is_400(api, method, action, envelope, depth):
    refused(send(api, method, kv_url("k", action), fill(envelope, nested(depth))), 400, "nested too deeply")

    assert not KVEntry.objects.exists()


def test_kv_api__a_value_at_the_limit_is_stored_and_shown(api, browser):
    response = send(api, "put", kv_url("k"), fill('{"value": @}', nested(MAX_JSON_DEPTH)))

    assert response.status_code == 200, response.content
    assert kv.get_store().get("k") == json.loads(nested(MAX_JSON_DEPTH))
    assert browser.get(reverse("admin:kv_kventry_change", args=["k"])).status_code == 200


def test_kv_api__a_hash_at_the_limit_is_stored(api):
    # the stored hash is its object of fields: one level more than a field's value
    body = fill('{"fields": {"f": @}}', nested(MAX_JSON_DEPTH - 1))

    response = send(api, "patch", kv_url("k", "hash"), body)

    assert response.status_code == 200, response.content
    assert kv.get_store().hget("k", "f") == json.loads(nested(MAX_JSON_DEPTH - 1))


def depth_of(value) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    return 0


TRICKY = {
    "brackets-in-strings": {"[[[": "]]]", "a": ["{{{", "}"], "b": [[["x"]]]},
    "escaped-quotes": {'q"[': ['"]]', '\\"', [["\\"]]], "r": "\\\\"},
    "unicode": {"é[": ["😀", {"ü": [[]]}]},
    "siblings": [[], [[]], [[[]]], [[[[[[[[[[[]]]]]]]]]]], []],
    "empty-strings": ["", "", {"": ""}, [[""]]],
}


@pytest.mark.parametrize("value", TRICKY.values(), ids=TRICKY.keys())
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_text_too_deep__measures_what_the_value_nests(value, ensure_ascii):
    # a chain of wrappers puts the tricky part at every depth around the limit
    for wrappers in (0, 1, MAX_JSON_DEPTH - 12, MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH + 3):
        wrapped = value
        for n in range(wrappers):
            wrapped = [wrapped, "]"] if n % 2 else {"k[": wrapped}
        text = json.dumps(wrapped, ensure_ascii=ensure_ascii)
        depth = depth_of(wrapped)
        for limit in (depth - 1, depth, 3, MAX_JSON_DEPTH):
            assert text_too_deep(text, limit) == (depth > limit), (depth, limit)


# -- malformed JSON ---------------------------------------------------------------------------

@pytest.mark.parametrize("body", ['{"topic": ', '{"topic": "toolbox.echo", "payload": NaN}',
                                  '{"topic": "toolbox.echo"} trailing', "\ufeff{}"])
def test_jobs_api__malformed_json_is_400(api, body):
    refused(send(api, "post", "/api/jobs/", body), 400, "JSON parse error")
    assert not Job.objects.exists()


@pytest.mark.parametrize("body", ['{"value": ', '{"value": Infinity}', "[" * 50 + "]" * 49])
def test_kv_api__malformed_json_is_400(api, body):
    refused(send(api, "put", kv_url("k"), body), 400, "JSON parse error")
    assert not KVEntry.objects.exists()


# -- body size --------------------------------------------------------------------------------

def test_jobs_api__a_body_over_data_upload_max_memory_size_is_413(api, settings):
    body = json.dumps({"topic": "toolbox.echo", "payload": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    refused(send(api, "post", "/api/jobs/", body), 413, "DATA_UPLOAD_MAX_MEMORY_SIZE",
            str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    assert not Job.objects.exists()
    assert_jobs_list_works(api)


def test_kv_api__a_body_over_a_lowered_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000

    refused(send(api, "put", kv_url("k"), json.dumps({"value": "x" * 1_000})), 413, "1000 bytes")
    assert not KVEntry.objects.exists()
    response = send(api, "put", kv_url("k"), json.dumps({"value": "x" * 900}))
    assert response.status_code == 200, response.content


def test_kv_api__no_limit_when_data_upload_max_memory_size_is_none(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    settings.KV = {"HTTP_ENABLED": True, "MAX_VALUE_SIZE": 4_000_000}

    response = send(api, "put", kv_url("k"), json.dumps({"value": "x" * 3_000_000}))

    assert response.status_code == 200, response.content


def test_parser__a_body_longer_than_declared_is_413_too(settings):
    # chunked uploads or a wrong Content-Length: what arrives is measured, not only the header
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10

    with pytest.raises(BodyTooLarge, match="over 10 bytes"):
        JSONBodyParser().parse(io.BytesIO(b'{"value": "0123456789"}'), JSON, {})


def test_parser__parses_json_with_the_charset_given():
    body = '{"value": "é"}'.encode("utf-16")

    assert JSONBodyParser().parse(io.BytesIO(body), JSON, {"encoding": "utf-16"}) == {"value": "é"}
    with pytest.raises(ParseError, match="JSON parse error"):
        JSONBodyParser().parse(io.BytesIO(b"{}"), JSON, {"encoding": "no-such-charset"})


# -- keys holding the six characters \u0000 --------------------------------------------------

def test_kv_api__a_key_with_the_six_characters_backslash_u0000_is_stored(api):
    key = "a\\u0000b"

    response = send(api, "put", kv_url(key), '{"value": 1}')

    assert response.status_code == 200, response.content
    assert response.json()["key"] == key
    assert KVEntry.objects.get().key == key
    assert api.get(kv_url(key)).json()["value"] == 1
    assert api.get("/api/kv/keys/", {"pattern": "a*"}).json()["keys"] == [key]


def test_kv_api__a_key_with_a_nul_character_is_400(api):
    refused(send(api, "put", kv_url("a\x00b"), '{"value": 1}'), 400, "NUL")
    assert not KVEntry.objects.exists()


def test_kv_api__a_hash_field_with_the_six_characters_backslash_u0000_is_stored(api):
    response = send(api, "patch", kv_url("h", "hash"), json.dumps({"fields": {"f\\u0000": 1}}))

    assert response.status_code == 200, response.content
    assert kv.get_store().hgetall("h") == {"f\\u0000": 1}


def test_jobs_api__a_topic_with_the_six_characters_backslash_u0000_is_stored(api, settings):
    settings.JOBS = {"HTTP_ENABLED": True, "ALLOWED_TOPICS": ["remote.*"]}

    response = send(api, "post", "/api/jobs/", json.dumps({"topic": "remote.\\u0000"}))

    assert response.status_code == 201, response.content
    assert Job.objects.get().topic == "remote.\\u0000"


# -- the demo's notes API: the same parser ------------------------------------------------------

@pytest.fixture
def notes(user) -> APIClient:
    plugin_manager.enable("notes")
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize("body, status, words", [
    (fill('{"title": "t", "body": @}', SURROGATE_TEXT), 400, ["lone surrogate"]),
    (fill('{"title": "t", "body": "b", "x": @}', nested(MAX_BODY_DEPTH)), 400, ["nested too deeply"]),
    (fill('{"title": "t", "body": "b", "x": @}', nested(100_000)), 400, ["nested too deeply"]),
    ('{"title": "t", "body": ', 400, ["JSON parse error"]),
], ids=["surrogate", "deep", "very-deep", "malformed"])
def test_notes_api__bad_json_is_400(notes, body, status, words):
    before = Note.objects.count()

    refused(send(notes, "post", "/api/notes/", body), status, *words)
    assert Note.objects.count() == before


def test_notes_api__a_body_over_the_limit_is_413(notes, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    before = Note.objects.count()

    refused(send(notes, "post", "/api/notes/", json.dumps({"title": "t", "body": "x" * 1_000})), 413,
            "DATA_UPLOAD_MAX_MEMORY_SIZE")
    assert Note.objects.count() == before


def test_notes_api__a_good_note_is_still_created(notes):
    response = send(notes, "post", "/api/notes/", json.dumps({"title": "t", "body": "one two"}))

    assert response.status_code == 201, response.content
    assert Note.objects.get(pk=response.json()["id"]).title == "t"


# -- the admin's key form -----------------------------------------------------------------------

def add_key(client, key: str, value: str, ttl: str = "", type_: str = "value"):
    return client.post(reverse("admin:kv_kventry_add"),
                       {"new_key": key, "new_type": type_, "json_value": value, "ttl": ttl})


def edit_key(client, key: str, value: str, ttl: str = ""):
    return client.post(reverse("admin:kv_kventry_change", args=[admin_quote(key)]),
                       {"json_value": value, "ttl": ttl})


def form_errors(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content  # the form again, not a redirect
    return response.context["adminform"].form.errors


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_admin_form__adding_json_nested_over_the_limit_is_a_form_error(browser, depth):
    errors = form_errors(add_key(browser, "k", nested(depth)))

    assert "nested too deeply" in " ".join(errors["json_value"])
    assert not KVEntry.objects.exists()


def test_admin_form__a_hash_nested_over_the_limit_is_a_form_error(browser):
    errors = form_errors(add_key(browser, "h", fill('{"f": @}', nested(MAX_JSON_DEPTH)), type_="hash"))

    assert "nested too deeply" in " ".join(errors["json_value"])
    assert not KVEntry.objects.exists()


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 100_000])
def test_admin_form__editing_in_json_nested_over_the_limit_is_a_form_error(browser, depth):
    kv.get_store().set("k", "before")

    errors = form_errors(edit_key(browser, "k", nested(depth)))

    assert "nested too deeply" in " ".join(errors["json_value"])
    assert kv.get_store().get("k") == "before"


def test_admin_form__json_at_the_limit_is_saved(browser):
    response = add_key(browser, "k", nested(MAX_JSON_DEPTH))

    assert response.status_code == 302
    assert kv.get_store().get("k") == json.loads(nested(MAX_JSON_DEPTH))


def test_admin_form__a_lone_surrogate_is_a_form_error(browser):
    errors = form_errors(add_key(browser, "k", fill('{"a": @}', SURROGATE_TEXT)))

    assert "lone surrogate" in " ".join(errors["json_value"])
    assert not KVEntry.objects.exists()


@pytest.mark.parametrize("ttl", [str(MAX_TTL + 1), str(10**16), str(10**30)])
def test_admin_form__a_ttl_over_the_apis_cap_is_a_form_error(browser, ttl):
    errors = form_errors(add_key(browser, "k", "1", ttl=ttl))

    assert str(MAX_TTL) in " ".join(errors["ttl"])
    assert not KVEntry.objects.exists()


def test_admin_form__setting_a_ttl_over_the_cap_on_a_key_is_a_form_error(browser):
    kv.get_store().set("k", 1)

    errors = form_errors(edit_key(browser, "k", "1", ttl=str(10**16)))

    assert str(MAX_TTL) in " ".join(errors["ttl"])
    assert kv.get_store().ttl("k") == -1


def test_admin_form__a_ttl_at_the_cap_is_saved(browser):
    assert add_key(browser, "k", "1", ttl=str(MAX_TTL)).status_code == 302
    assert kv.get_store().ttl("k") == MAX_TTL


def test_admin_form__a_key_with_the_six_characters_backslash_u0000_is_saved(browser):
    key = "a\\u0000b"

    response = add_key(browser, key, '"v"')

    assert response.status_code == 302
    assert kv.get_store().get(key) == "v"
    assert browser.get(reverse("admin:kv_kventry_change", args=[admin_quote(key)])).status_code == 200


def test_admin_form__a_key_with_a_nul_character_is_a_form_error(browser):
    errors = form_errors(add_key(browser, "a\x00b", '"v"'))

    assert "null character" in " ".join(errors["new_key"]).lower()  # Django's CharField says it first
    assert not KVEntry.objects.exists()


# -- what a handler returns or raises: stored alike on every database, shown by the API -----------

@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_jobs")
@pytest.mark.parametrize("result, words", [
    ("a\ud800b", "lone surrogate"),
    (json.loads(nested(MAX_JSON_DEPTH + 1)), "nested too deeply"),
    ({"nul": "\x00"}, "NUL"),
], ids=["surrogate", "deep", "nul"])
def test_handler__a_result_no_database_can_store_fails_the_job_readably(api, registered, result, words):
    registered("bad.result", lambda job: result)
    job = jobs.get_job_store().enqueue("bad.result", max_retries=0)

    Dispatcher(burst=True, workers=1).run()

    row = Job.objects.get(pk=job.id)
    assert (row.status, row.result) == ("failed", None)
    assert words in row.last_error
    response = api.get(f"/api/jobs/{job.id}/")
    assert response.status_code == 200 and words in response.json()["last_error"]
    assert_jobs_list_works(api)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fast_jobs")
def test_handler__an_error_message_with_a_lone_surrogate_is_stored_escaped(api, registered):
    def fail(job):
        raise ValueError("bad \ud800 text")

    registered("bad.error", fail)
    job = jobs.get_job_store().enqueue("bad.error", max_retries=0)

    Dispatcher(burst=True, workers=1).run()

    row = Job.objects.get(pk=job.id)
    assert row.status == "failed" and "bad \\ud800 text" in row.last_error
    assert api.get(f"/api/jobs/{job.id}/").status_code == 200
    assert_jobs_list_works(api)
