"""API tokens (``tachycore.authentication.CachedTokenAuthentication``, the demo's token class):
a token's user is kept for ``TACHYCORE["API_TOKEN_CACHE_TTL"]``, and every revocation the ORM
signals takes effect at the next request."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

import kv
from tachycore import authentication
from tachycore.runtime import runtime

pytestmark = pytest.mark.django_db

URL = "/api/kv/keys/k/"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch, settings):
    settings.KV = {"HTTP_ENABLED": True}
    clock = Clock()
    monkeypatch.setattr(authentication.tokens, "clock", clock)
    authentication.tokens.clear()
    kv.get_store().set("k", {"a": 1})
    return clock


@pytest.fixture
def reader():
    user = User.objects.create_user("reader")
    user.user_permissions.add(Permission.objects.get(codename="view_kventry"))
    return user


@pytest.fixture
def token(reader):
    return Token.objects.create(user=reader).key


def get(client, token):
    return client.get(URL, HTTP_AUTHORIZATION=f"Token {token}")


def test_token__a_known_token_reads_no_token_or_permission_again(client, token):
    assert get(client, token).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert get(client, token).status_code == 200

    read = " ".join(query["sql"] for query in queries.captured_queries)
    assert "authtoken_token" not in read and "auth_permission" not in read


def test_token__deleted_is_refused_at_once(client, token):
    assert get(client, token).status_code == 200

    Token.objects.get(key=token).delete()

    assert get(client, token).status_code == 403


def test_token__user_deactivated_is_refused_at_once(client, token, reader):
    assert get(client, token).status_code == 200

    reader.is_active = False
    reader.save()

    assert get(client, token).status_code == 403


def test_token__permission_removed_is_refused_at_once(client, token, reader):
    assert get(client, token).status_code == 200

    reader.user_permissions.clear()

    assert get(client, token).status_code == 403


def test_token__permission_given_through_a_group_counts_at_once(client, reader):
    reader.user_permissions.clear()
    key = Token.objects.create(user=reader).key
    assert get(client, key).status_code == 403
    group = Group.objects.create(name="readers")
    reader.groups.add(group)

    group.permissions.add(Permission.objects.get(codename="view_kventry"))

    assert get(client, key).status_code == 200


def test_token__change_without_a_signal_counts_within_the_ttl(client, token, reader, clock, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "API_TOKEN_CACHE_TTL": 2}
    assert get(client, token).status_code == 200

    User.objects.filter(pk=reader.pk).update(is_active=False)  # no signal: the bound applies
    clock.now += 1.9
    assert get(client, token).status_code == 200
    clock.now += 0.2

    assert get(client, token).status_code == 403


def test_token__ttl_0_reads_the_token_on_every_request(client, token, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "API_TOKEN_CACHE_TTL": 0}
    assert get(client, token).status_code == 200

    with CaptureQueriesContext(connection) as queries:
        assert get(client, token).status_code == 200

    assert any("authtoken_token" in query["sql"] for query in queries.captured_queries)


def test_token__a_wrong_token_is_never_kept(client, token):
    assert get(client, "not-" + token).status_code == 403

    assert authentication.tokens.get("not-" + token) is None


def test_token__a_revocation_tells_the_other_processes_after_commit(
        token, monkeypatch, django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(runtime, "publish", lambda channel, payload: sent.append(channel))

    with django_capture_on_commit_callbacks(execute=True):
        Token.objects.get(key=token).delete()

    assert sent == [authentication.CHANNEL]


def test_token__a_message_from_another_process_empties_the_cache(client, token):
    assert get(client, token).status_code == 200

    runtime._dispatch(authentication.CHANNEL, None, "another-process")

    assert authentication.tokens.get(token) is None


def test_token__a_request_beside_an_uncommitted_revocation_keeps_nothing_past_commit(
        client, token, reader, django_capture_on_commit_callbacks):
    active = User.objects.get(pk=reader.pk)
    with django_capture_on_commit_callbacks(execute=True):
        reader.is_active = False
        reader.save()
        # a request of another thread, between the save and the commit, still reads the user active
        authentication.tokens.fill(token, active, Token.objects.get(key=token), 60, authentication.tokens.generation)

    assert get(client, token).status_code == 403
