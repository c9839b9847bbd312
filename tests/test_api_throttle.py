"""Throttles of the kv and jobs HTTP APIs: ``KV["THROTTLE_RATES"]`` and ``JOBS["THROTTLE_RATES"]``,
per user and scope, per IP for anonymous requests and failed authentications; 429 with a JSON
detail and ``Retry-After``; what a throttled request would have written is not written.

The suite runs with rates it never reaches (tests/settings.py, in the environment); these tests
set low ones through ``app_env``. The counts live in the default cache, emptied for each test.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import jobs
import kv
from jobs.checks import check_settings as check_jobs_settings
from jobs.conf import jobs_settings
from jobs.models import Job, JobStatus
from kv.checks import check_settings as check_kv_settings
from kv.conf import kv_settings

pytestmark = pytest.mark.django_db

OFF = {"anon": None, "read": None, "write": None}
JOBS_OFF = {"anon": None, "enqueue": None, "read": None, "manage": None}


@pytest.fixture(autouse=True)
def empty_counts():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def apis_on(settings):
    settings.KV = {"HTTP_ENABLED": True}
    settings.JOBS = {"HTTP_ENABLED": True}


def kv_rates(app_env, **rates) -> None:
    app_env.set("KV_THROTTLE_RATES", json.dumps({**OFF, **rates}))


def jobs_rates(app_env, **rates) -> None:
    app_env.set("JOBS_THROTTLE_RATES", json.dumps({**JOBS_OFF, **rates}))


def user_with(name: str, *permissions: str, **fields) -> User:
    user = User.objects.create_user(name, password="pw", **fields)
    for permission in permissions:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def token_client(user: User, ip: str = "10.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=ip)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def assert_throttled(response) -> None:
    assert response.status_code == 429, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"].startswith("Request was throttled.")
    assert 0 < int(response["Retry-After"]) <= 60


# -- kv ------------------------------------------------------------------------------------------


def test_kv_write__over_the_rate_429_and_nothing_written(apis_on, app_env):
    kv_rates(app_env, write="2/min")
    client = token_client(user_with("writer", "kv.change_kventry"))

    statuses = [client.put("/api/kv/keys/a/", {"value": n}, format="json").status_code for n in range(2)]
    throttled = client.put("/api/kv/keys/a/", {"value": 99}, format="json")

    assert statuses == [200, 200]
    assert_throttled(throttled)
    assert kv.get_store().get("a") == 1


def test_kv__read_and_write_are_counted_apart(apis_on, app_env):
    kv_rates(app_env, read="1/min", write="1/min")
    client = token_client(user_with("writer", "kv.change_kventry"))

    assert client.put("/api/kv/keys/a/", {"value": 1}, format="json").status_code == 200
    assert client.get("/api/kv/keys/a/").status_code == 200
    assert_throttled(client.get("/api/kv/keys/a/"))
    assert_throttled(client.post("/api/kv/keys/a/incr/", {"amount": 1}, format="json"))
    assert kv.get_store().get("a") == 1


def test_kv__each_user_has_a_count_of_its_own(apis_on, app_env):
    kv_rates(app_env, read="1/min")
    kv.get_store().set("a", 1)
    first = token_client(user_with("first", "kv.view_kventry"))
    second = token_client(user_with("second", "kv.view_kventry"))  # same IP

    assert first.get("/api/kv/keys/a/").status_code == 200
    assert_throttled(first.get("/api/kv/keys/a/"))
    assert second.get("/api/kv/keys/a/").status_code == 200


def test_kv__a_scope_set_to_none_is_not_throttled(apis_on, app_env):
    kv_rates(app_env, read=None)
    client = token_client(user_with("reader", "kv.view_kventry"))

    assert [client.get("/api/kv/keys/").status_code for _ in range(30)] == [200] * 30


def test_kv_anon__counted_per_ip_and_x_forwarded_for_is_not_trusted(settings, app_env):
    settings.KV = {"HTTP_ENABLED": True, "READ_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
    kv_rates(app_env, anon="2/min")
    one, other = APIClient(REMOTE_ADDR="10.0.0.1"), APIClient(REMOTE_ADDR="10.0.0.2")

    assert one.get("/api/kv/keys/").status_code == 200
    assert one.get("/api/kv/keys/", HTTP_X_FORWARDED_FOR="1.2.3.4").status_code == 200
    assert_throttled(one.get("/api/kv/keys/", HTTP_X_FORWARDED_FOR="5.6.7.8"))
    assert other.get("/api/kv/keys/").status_code == 200


def test_kv_anon__x_forwarded_for_counts_behind_num_proxies(settings, app_env):
    settings.KV = {"HTTP_ENABLED": True, "READ_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"]}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    kv_rates(app_env, anon="1/min")
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")

    assert proxy.get("/api/kv/keys/", HTTP_X_FORWARDED_FOR="1.1.1.1").status_code == 200
    assert_throttled(proxy.get("/api/kv/keys/", HTTP_X_FORWARDED_FOR="1.1.1.1"))
    assert proxy.get("/api/kv/keys/", HTTP_X_FORWARDED_FOR="2.2.2.2").status_code == 200


# -- failed authentication -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/kv/keys/", "/api/jobs/"])
def test_bad_tokens__a_burst_from_one_ip_gets_429_before_the_token_is_checked(apis_on, app_env, path):
    kv_rates(app_env, anon="5/min")
    jobs_rates(app_env, anon="5/min")
    guesser = APIClient(REMOTE_ADDR="10.0.0.9")
    good = Token.objects.create(user=user_with("reader", "kv.view_kventry", "jobs.view_job")).key

    statuses = [guesser.get(path, HTTP_AUTHORIZATION=f"Token wrong{n}").status_code for n in range(5)]
    locked = guesser.get(path, HTTP_AUTHORIZATION="Token wrong-again")
    right_token_same_ip = guesser.get(path, HTTP_AUTHORIZATION=f"Token {good}")
    other_ip = APIClient(REMOTE_ADDR="10.0.0.10").get(path, HTTP_AUTHORIZATION=f"Token {good}")

    assert statuses == [403] * 5  # "Invalid token."
    assert_throttled(locked)
    assert_throttled(right_token_same_ip)  # locked out: the credentials are not even looked at
    assert other_ip.status_code == 200


def test_bad_tokens__the_lock_ends_with_the_period(apis_on, app_env, monkeypatch):
    kv_rates(app_env, anon="2/s")
    now = [1000.0]  # the throttle's clock, moved by hand
    monkeypatch.setattr("tachycore.rest.AppRateThrottle.timer", lambda self: now[0])
    guesser = APIClient(REMOTE_ADDR="10.0.0.9")
    good = Token.objects.create(user=user_with("reader", "kv.view_kventry")).key

    for _ in range(2):
        guesser.get("/api/kv/keys/", HTTP_AUTHORIZATION="Token wrong")
    assert_throttled(guesser.get("/api/kv/keys/", HTTP_AUTHORIZATION=f"Token {good}"))
    now[0] += 1.5
    assert guesser.get("/api/kv/keys/", HTTP_AUTHORIZATION=f"Token {good}").status_code == 200


def test_good_tokens__are_not_counted_as_failures(apis_on, app_env):
    kv_rates(app_env, anon="2/min")
    client = token_client(user_with("reader", "kv.view_kventry"))

    assert [client.get("/api/kv/keys/").status_code for _ in range(5)] == [200] * 5


# -- jobs ----------------------------------------------------------------------------------------


def test_jobs_requeue__a_burst_is_cut_at_the_manage_rate_and_the_job_left_alone(apis_on, app_env):
    jobs_rates(app_env, manage="3/min")
    job = jobs.get_job_store().enqueue("toolbox.echo")
    client = token_client(user_with("operator", "jobs.change_job"))

    statuses = []
    for _ in range(5):
        Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, last_error="boom")
        statuses.append(client.post(f"/api/jobs/{job.id}/requeue/").status_code)

    assert statuses == [200, 200, 200, 429, 429]
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED  # the throttled requeues did nothing


def test_jobs__enqueue_read_and_manage_are_counted_apart(apis_on, app_env):
    jobs_rates(app_env, enqueue="1/min", read="1/min", manage="1/min")
    client = token_client(user_with("operator", "jobs.add_job", "jobs.change_job", "jobs.delete_job"))

    created = client.post("/api/jobs/", {"topic": "toolbox.echo"}, format="json")
    assert created.status_code == 201
    assert_throttled(client.post("/api/jobs/", {"topic": "toolbox.echo"}, format="json"))
    assert client.get("/api/jobs/").status_code == 200
    assert_throttled(client.get("/api/jobs/stats/"))
    assert client.delete(f"/api/jobs/{created.json()['id']}/").status_code == 204
    assert Job.objects.count() == 0


# -- settings ------------------------------------------------------------------------------------


def test_settings__defaults(app_env):
    app_env.unset("KV_THROTTLE_RATES")
    app_env.unset("JOBS_THROTTLE_RATES")

    assert kv_settings.THROTTLE_RATES == {"anon": "60/min", "read": "600/min", "write": "300/min"}
    assert jobs_settings.THROTTLE_RATES == {"anon": "60/min", "enqueue": "300/min", "read": "600/min",
                                            "manage": "60/min"}


def test_settings__scopes_left_out_keep_their_default(settings, app_env):
    app_env.unset("KV_THROTTLE_RATES")
    settings.KV = {"THROTTLE_RATES": {"write": "10/s", "anon": None}}
    app_env.set("JOBS_THROTTLE_RATES", '{"manage": "5/min"}')

    assert kv_settings.THROTTLE_RATES == {"anon": None, "read": "600/min", "write": "10/s"}
    assert jobs_settings.THROTTLE_RATES["manage"] == "5/min"
    assert jobs_settings.THROTTLE_RATES["enqueue"] == "300/min"


@pytest.mark.parametrize("rates, problem", [
    ('{"write": "often"}', "cannot parse 'often' as a rate"),
    ('{"write": "0/min"}', "None turns the scope off"),
    ('{"writes": "1/min"}', "unknown scope 'writes'"),
    ('["1/min"]', "expected a dict of scope: rate"),
])
def test_settings__bad_rates_are_kv_e001_naming_the_variable(app_env, rates, problem):
    app_env.set("KV_THROTTLE_RATES", rates)

    errors = check_kv_settings()

    assert [error.id for error in errors] == ["kv.E001"]
    assert "KV_THROTTLE_RATES" in errors[0].msg and problem in errors[0].msg


def test_settings__bad_rate_in_the_jobs_dict_is_jobs_e001(settings, app_env):
    app_env.unset("JOBS_THROTTLE_RATES")
    settings.JOBS = {"THROTTLE_RATES": {"manage": "5 per minute"}}

    errors = check_jobs_settings()

    assert [error.id for error in errors] == ["jobs.E001"]
    assert 'JOBS["THROTTLE_RATES"]' in errors[0].msg and "'5 per minute'" in errors[0].msg
