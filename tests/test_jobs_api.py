"""The jobs HTTP API at /api/jobs/: switches, permissions, every endpoint and status code,
the limits (ALLOWED_TOPICS, MAX_PAYLOAD_SIZE), the JSON errors and the OpenAPI schema.

The tests drive the site through DRF's test client and check the ``_jobs`` rows afterwards.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from rest_framework.permissions import BasePermission
from rest_framework.test import APIClient

import jobs
from jobs.checks import check_permission_classes
from jobs.conf import jobs_settings
from jobs.models import Job, JobStatus
from tests.helpers.rows import disable_in_registry

pytestmark = pytest.mark.django_db

ON = {"HTTP_ENABLED": True}
JOB_FIELDS = {"id", "topic", "payload", "status", "priority", "queue_name", "run_at", "locked_until",
              "locked_by", "attempts", "retries", "max_retries", "last_error", "errors", "result",
              "dedupe_key", "task_backend", "workers", "created", "updated", "started_at",
              "attempted_at", "finished_at"}


class RefuseWithMessage(BasePermission):
    """A custom permission class named in JOBS[...] by the tests."""

    message = "Closed for the test."

    def has_permission(self, request, view) -> bool:
        return False


class RefuseFailedJobs(BasePermission):
    """Grants every request, but no object whose status is failed."""

    message = "Failed jobs are private."

    def has_object_permission(self, request, view, obj) -> bool:
        return obj.status != JobStatus.FAILED

    def has_permission(self, request, view) -> bool:
        return True


# -- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def store():
    return jobs.get_job_store()


@pytest.fixture
def http_on(settings):
    settings.JOBS = dict(ON)
    return settings


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def admin(admin_user) -> APIClient:
    client = APIClient()
    client.force_login(admin_user)
    return client


@pytest.fixture
def api(http_on, admin) -> APIClient:
    """A staff user's client, with the API switched on."""
    return admin


@pytest.fixture
def plain(django_user_model) -> APIClient:
    """A signed-in user who is neither staff nor allowed to add jobs."""
    client = APIClient()
    client.force_login(django_user_model.objects.create_user("plain", password="pw"))
    return client


@pytest.fixture
def enqueuer(django_user_model) -> APIClient:
    """A signed-in user who is not staff but has the jobs.add_job permission."""
    user = django_user_model.objects.create_user("enqueuer", password="pw")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="add_job"))
    client = APIClient()
    client.force_login(user)
    return client


@pytest.fixture
def operator(http_on, django_user_model) -> APIClient:
    """A staff user with every jobs model permission, not a superuser, with the API on."""
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="jobs"))
    client = APIClient()
    client.force_login(user)
    return client


def url(job_id: int | str | None = None, action: str | None = None) -> str:
    if job_id is None:
        return "/api/jobs/" + (f"{action}/" if action else "")
    return f"/api/jobs/{job_id}/" + (f"{action}/" if action else "")


def post(client: APIClient, body, path: str | None = None):
    return client.post(path or url(), body, format="json")


def pm(*args: str) -> None:
    call_command("pm", *args, stdout=io.StringIO(), stderr=io.StringIO())


def assert_error(response, status: int) -> str:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert b"Traceback" not in response.content
    return body["detail"]


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def mark(job: Job, status: str, **fields) -> Job:
    """Put a job in a state the dispatcher would (the tests run no dispatcher)."""
    if status == JobStatus.PROCESSING:
        fields = {"locked_by": "node-1", "locked_until": timezone.now() + timedelta(minutes=1),
                  "attempts": 1, **fields}
    Job.objects.filter(pk=job.pk).update(status=status, **fields)
    job.refresh_from_db()
    return job


def row_count() -> int:
    return Job.objects.count()


# -- switches: JOBS["HTTP_ENABLED"] and the plugin ----------------------------------------------

ROUTES = [("get", url()), ("post", url()), ("get", url(1)), ("delete", url(1)),
          ("post", url(1, "requeue")), ("get", url(action="stats")), ("options", url())]


@pytest.mark.parametrize("method, path", ROUTES)
def test_http_disabled__every_route_404_by_default(admin, store, method, path):
    job = store.enqueue("toolbox.echo", {"n": 1})
    path = path.replace("/1/", f"/{job.id}/")

    response = getattr(admin, method)(path, {"topic": "toolbox.echo"}, format="json")

    assert response.status_code == 404
    assert list(Job.objects.values_list("id", "status")) == [(job.id, JobStatus.PENDING)]


def test_http_disabled__explicit_false_404(settings, admin):
    settings.JOBS = {"HTTP_ENABLED": False}

    assert admin.get(url()).status_code == 404
    assert post(admin, {"topic": "toolbox.echo"}).status_code == 404
    assert row_count() == 0


def test_jobs_disabled__every_route_404_even_with_http_enabled(settings, admin, store):
    job = store.enqueue("toolbox.echo")
    settings.JOBS = {**ON, "DISABLED": True}

    statuses = [admin.get(url()).status_code, post(admin, {"topic": "toolbox.echo"}).status_code,
                admin.get(url(job.id)).status_code, admin.delete(url(job.id)).status_code,
                admin.post(url(job.id, "requeue")).status_code, admin.get(url(action="stats")).status_code]

    assert statuses == [404] * 6
    assert list(Job.objects.values_list("id", flat=True)) == [job.id]


def test_http_enabled_by_setting__served_without_restart(settings, admin):
    assert admin.get(url()).status_code == 404

    settings.JOBS = ON
    assert admin.get(url()).status_code == 200

    settings.JOBS = {"HTTP_ENABLED": False}
    assert admin.get(url()).status_code == 404


def test_http_enabled_by_environment(monkeypatch, admin):
    monkeypatch.setenv("JOBS_HTTP_ENABLED", "true")
    jobs_settings.reset()
    try:
        assert admin.get(url()).status_code == 200
        assert post(admin, {"topic": "toolbox.echo"}).status_code == 201
    finally:
        monkeypatch.delenv("JOBS_HTTP_ENABLED")
        jobs_settings.reset()

    assert admin.get(url()).status_code == 404
    assert row_count() == 1


def test_plugin_disabled__404_until_enabled_again(api, store):
    job = store.enqueue("toolbox.echo")
    disable_in_registry("jobs")

    assert api.get(url()).status_code == 404
    assert api.get(url(job.id)).status_code == 404
    assert api.delete(url(job.id)).status_code == 404
    assert post(api, {"topic": "toolbox.echo"}).status_code == 404
    assert list(Job.objects.values_list("id", flat=True)) == [job.id]

    pm("enable", "jobs")
    assert api.get(url(job.id)).status_code == 200


def test_reverse__names_in_the_jobs_namespace(api, store):
    job = store.enqueue("toolbox.echo")

    assert reverse("jobs:job-list") == "/api/jobs/"
    assert reverse("jobs:job-detail", kwargs={"pk": job.id}) == f"/api/jobs/{job.id}/"
    assert reverse("jobs:job-requeue", kwargs={"pk": job.id}) == f"/api/jobs/{job.id}/requeue/"
    assert reverse("jobs:job-stats") == "/api/jobs/stats/"


# -- permissions: enqueue ------------------------------------------------------------------------


def test_enqueue_permission__anonymous_403_nothing_written(http_on, anon):
    assert_error(post(anon, {"topic": "toolbox.echo"}), 403)
    assert row_count() == 0


def test_enqueue_permission__user_without_add_job_403_nothing_written(http_on, plain):
    detail = assert_error(post(plain, {"topic": "toolbox.echo"}), 403)

    assert "jobs.add_job" in detail
    assert row_count() == 0


def test_enqueue_permission__user_with_add_job_201(http_on, enqueuer):
    response = post(enqueuer, {"topic": "toolbox.echo", "payload": {"a": 1}})

    assert response.status_code == 201, response.content
    assert list(Job.objects.values_list("topic", "payload")) == [("toolbox.echo", {"a": 1})]


def test_enqueue_permission__staff_is_not_enough_without_add_job(http_on, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    client = APIClient()
    client.force_login(staff)

    assert_error(post(client, {"topic": "toolbox.echo"}), 403)
    assert client.get(url()).status_code == 200  # view_job lets it read jobs
    assert row_count() == 0


# -- permissions: manage -------------------------------------------------------------------------

MANAGE_ROUTES = [("get", url()), ("get", url(0)), ("delete", url(0)), ("post", url(0, "requeue")),
                 ("get", url(action="stats"))]


@pytest.mark.parametrize("method, path", MANAGE_ROUTES)
@pytest.mark.parametrize("who", ["anon", "plain", "enqueuer"])
def test_manage_permission__without_job_permissions_403_row_kept(http_on, store, request, who, method, path):
    client = request.getfixturevalue(who)
    job = mark(store.enqueue("toolbox.echo"), JobStatus.FAILED, last_error="boom")

    assert_error(getattr(client, method)(path.replace("/0/", f"/{job.id}/")), 403)
    job_after = Job.objects.get()
    assert (job_after.id, job_after.status, job_after.last_error) == (job.id, JobStatus.FAILED, "boom")


@pytest.mark.parametrize("method, path, status", [
    ("get", url(), 200), ("get", url(0), 200), ("post", url(0, "requeue"), 200),
    ("get", url(action="stats"), 200), ("delete", url(0), 204),
])
def test_manage_permission__staff_allowed(api, store, method, path, status):
    job = store.enqueue("toolbox.echo")

    assert getattr(api, method)(path.replace("/0/", f"/{job.id}/")).status_code == status


def test_permissions__enqueue_and_manage_classes_from_settings(settings, anon, plain):
    settings.JOBS = {**ON, "ENQUEUE_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
                     "MANAGE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"]}

    response = post(anon, {"topic": "toolbox.echo"})
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]

    assert_error(anon.get(url(job_id)), 403)
    assert plain.get(url(job_id)).json()["id"] == job_id
    assert plain.delete(url(job_id)).status_code == 204
    assert row_count() == 0


def test_permissions__classes_from_environment(http_on, monkeypatch, anon):
    monkeypatch.setenv("JOBS_ENQUEUE_PERMISSION_CLASSES", "rest_framework.permissions.AllowAny")
    jobs_settings.reset()
    try:
        assert post(anon, {"topic": "toolbox.echo"}).status_code == 201
    finally:
        monkeypatch.delenv("JOBS_ENQUEUE_PERMISSION_CLASSES")
        jobs_settings.reset()

    assert_error(post(anon, {"topic": "toolbox.echo"}), 403)
    assert row_count() == 1


def test_permissions__custom_class_message_reaches_the_client(settings, admin):
    settings.JOBS = {**ON, "ENQUEUE_PERMISSION_CLASSES": ["tests.test_jobs_api.RefuseWithMessage"]}

    assert admin.get(url()).status_code == 200
    assert assert_error(post(admin, {"topic": "toolbox.echo"}), 403) == "Closed for the test."
    assert row_count() == 0


def test_permissions__object_permission_of_a_custom_class_is_applied(settings, admin, store):
    settings.JOBS = {**ON, "MANAGE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser",
                                                         "tests.test_jobs_api.RefuseFailedJobs"]}
    pending = store.enqueue("toolbox.echo")
    failed = mark(store.enqueue("toolbox.echo"), JobStatus.FAILED)

    assert admin.get(url(pending.id)).status_code == 200
    assert assert_error(admin.get(url(failed.id)), 403) == "Failed jobs are private."
    assert_error(admin.delete(url(failed.id)), 403)
    assert_error(admin.post(url(failed.id, "requeue")), 403)
    assert Job.objects.get(pk=failed.id).status == JobStatus.FAILED


def test_permissions__empty_lists_allow_everyone(settings, anon):
    settings.JOBS = {**ON, "ENQUEUE_PERMISSION_CLASSES": [], "MANAGE_PERMISSION_CLASSES": []}

    assert post(anon, {"topic": "toolbox.echo"}).status_code == 201
    assert anon.get(url()).json()["count"] == 1


def test_permissions__bad_class_path_is_a_json_500_without_traceback(settings, admin):
    settings.JOBS = {**ON, "ENQUEUE_PERMISSION_CLASSES": ["nowhere.Nothing"]}

    assert_error(post(admin, {"topic": "toolbox.echo"}), 500)
    assert row_count() == 0


@pytest.mark.parametrize("path, problem", [
    ("nowhere.Nothing", "cannot import 'nowhere.Nothing'"),
    ("os.path.join", "is not a permission class"),
])
def test_check__bad_permission_class_is_jobs_e003(settings, path, problem):
    settings.JOBS = {"MANAGE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser", path]}

    errors = check_permission_classes()

    assert [error.id for error in errors] == ["jobs.E003"]
    assert 'JOBS["MANAGE_PERMISSION_CLASSES"]' in errors[0].msg and problem in errors[0].msg


# -- POST /api/jobs/ -----------------------------------------------------------------------------


def test_enqueue__topic_only_201_with_defaults(api):
    before = timezone.now()
    response = post(api, {"topic": "toolbox.echo"})
    after = timezone.now()

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == JOB_FIELDS
    job = Job.objects.get()
    assert body["id"] == job.id
    assert (job.topic, job.payload, job.status, job.priority, job.max_retries, job.dedupe_key) == (
        "toolbox.echo", {}, JobStatus.PENDING, 0, jobs_settings.MAX_RETRIES, None)
    assert before <= job.run_at <= after
    assert parse_time(body["run_at"]) == job.run_at
    assert (body["status"], body["payload"], body["attempts"]) == ("pending", {}, 0)


def test_enqueue__every_field_stored(api):
    run_at = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)

    response = post(api, {"topic": "toolbox.echo", "payload": {"to": ["a@b.c"], "n": 1.5, "x": None},
                          "run_at": run_at.isoformat(), "priority": -100, "max_retries": 7})

    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert job.payload == {"to": ["a@b.c"], "n": 1.5, "x": None}
    assert (job.run_at, job.priority, job.max_retries, job.dedupe_key) == (run_at, -100, 7, None)
    body = response.json()
    assert (parse_time(body["run_at"]), body["priority"], body["max_retries"]) == (run_at, -100, 7)


def test_enqueue__dedupe_key_stored(api):
    response = post(api, {"topic": "toolbox.echo", "dedupe_key": "mail:1"})

    assert response.status_code == 201, response.content
    assert response.json()["dedupe_key"] == "mail:1"
    assert list(Job.objects.values_list("dedupe_key", flat=True)) == ["mail:1"]


def test_enqueue__topic_is_not_trimmed(api):
    assert "' toolbox.echo'" in assert_error(post(api, {"topic": " toolbox.echo"}), 400)
    assert row_count() == 0


def test_enqueue__run_at_with_an_offset_is_kept_as_that_instant(api):
    response = post(api, {"topic": "toolbox.echo", "run_at": "2031-01-01T12:00:00+02:00"})

    assert response.status_code == 201, response.content
    assert Job.objects.get().run_at == datetime(2031, 1, 1, 10, 0, tzinfo=UTC)


def test_enqueue__run_at_without_offset_is_in_time_zone(api, settings):
    settings.TIME_ZONE = "Europe/Paris"

    assert post(api, {"topic": "toolbox.echo", "run_at": "2031-01-01T12:00:00"}).status_code == 201
    assert Job.objects.get().run_at == datetime(2031, 1, 1, 11, 0, tzinfo=UTC)


def test_enqueue__delay_defers_run_at(api):
    before = timezone.now()
    response = post(api, {"topic": "toolbox.echo", "delay": 90.5})
    after = timezone.now()

    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert before + timedelta(seconds=90.5) <= job.run_at <= after + timedelta(seconds=90.5)


@pytest.mark.parametrize("priority", [100, -100, 0, 42])
def test_enqueue__priority_in_range_stored(api, priority):
    assert post(api, {"topic": "toolbox.echo", "priority": priority}).status_code == 201
    assert Job.objects.get().priority == priority


@pytest.mark.parametrize("payload", [[1, "two"], "text", 3, True, {"nested": {"deep": [{}]}}, {}])
def test_enqueue__payload_is_any_json_value(api, payload):
    response = post(api, {"topic": "toolbox.echo", "payload": payload})

    assert response.status_code == 201, response.content
    assert response.json()["payload"] == payload
    assert Job.objects.get().payload == payload


def test_enqueue__null_payload_is_stored_as_empty_object(api):
    assert post(api, {"topic": "toolbox.echo", "payload": None}).status_code == 201
    assert Job.objects.get().payload == {}


def test_enqueue__dedupe_key_returns_the_pending_job(api):
    first = post(api, {"topic": "toolbox.echo", "payload": {"n": 1}, "dedupe_key": "k"})
    second = post(api, {"topic": "toolbox.echo", "payload": {"n": 2}, "dedupe_key": "k"})
    other = post(api, {"topic": "toolbox.echo", "payload": {"n": 3}, "dedupe_key": "other"})

    assert first.status_code == 201 and second.status_code == 200 and other.status_code == 201
    assert second.json()["id"] == first.json()["id"] and second.json()["deduplicated"] is True
    assert second.json()["payload"] == {"n": 1}  # staff may see the whole job
    assert sorted(Job.objects.values_list("dedupe_key", "payload")) == [("k", {"n": 1}), ("other", {"n": 3})]


def test_enqueue__dedupe_hit_shows_an_enqueue_only_user_no_more_than_id_and_status(api, enqueuer):
    first = post(api, {"topic": "toolbox.echo", "payload": {"secret": "s3cr3t"}, "dedupe_key": "k"}).json()
    response = post(enqueuer, {"topic": "toolbox.echo", "payload": {"n": 2}, "dedupe_key": "k"})

    assert response.status_code == 200
    assert response.json() == {"id": first["id"], "topic": "toolbox.echo", "status": "pending",
                               "deduplicated": True}
    assert Job.objects.count() == 1


def test_enqueue__dedupe_key_free_again_once_the_job_is_no_longer_pending(api):
    first = post(api, {"topic": "toolbox.echo", "dedupe_key": "k"}).json()
    mark(Job.objects.get(pk=first["id"]), JobStatus.COMPLETED)

    second = post(api, {"topic": "toolbox.echo", "dedupe_key": "k"})

    assert second.status_code == 201
    assert second.json()["id"] != first["id"]
    assert row_count() == 2


def test_enqueue__unknown_topic_400_names_it(api):
    detail = assert_error(post(api, {"topic": "nobody.handles"}), 400)

    assert "'nobody.handles'" in detail
    assert row_count() == 0


@pytest.mark.parametrize("body, field", [
    ({}, "topic"),
    ({"topic": ""}, "topic"),
    ({"topic": None}, "topic"),
    ({"topic": ["toolbox.echo"]}, "topic"),
    ({"topic": "t" * 256}, "topic"),
    ({"topic": "toolbox.echo", "delay": -1}, "delay"),
    ({"topic": "toolbox.echo", "delay": -0.001}, "delay"),
    ({"topic": "toolbox.echo", "delay": "soon"}, "delay"),
    ({"topic": "toolbox.echo", "delay": "5"}, "delay"),
    ({"topic": "toolbox.echo", "delay": True}, "delay"),
    ({"topic": "toolbox.echo", "delay": 10**10}, "delay"),
    ({"topic": "toolbox.echo", "priority": 101}, "priority"),
    ({"topic": "toolbox.echo", "priority": -101}, "priority"),
    ({"topic": "toolbox.echo", "priority": 1.5}, "priority"),
    ({"topic": "toolbox.echo", "priority": "5"}, "priority"),
    ({"topic": "toolbox.echo", "priority": True}, "priority"),
    ({"topic": "toolbox.echo", "priority": None}, "priority"),
    ({"topic": "toolbox.echo", "max_retries": -1}, "max_retries"),
    ({"topic": "toolbox.echo", "max_retries": 1001}, "max_retries"),
    ({"topic": "toolbox.echo", "max_retries": "3"}, "max_retries"),
    ({"topic": "toolbox.echo", "run_at": "tomorrow"}, "run_at"),
    ({"topic": "toolbox.echo", "run_at": 1700000000}, "run_at"),
    ({"topic": "toolbox.echo", "dedupe_key": ""}, "dedupe_key"),
    ({"topic": 123}, "topic"),
    ({"topic": True}, "topic"),
    ({"topic": "toolbox.echo", "dedupe_key": 7}, "dedupe_key"),
    ({"topic": "toolbox.echo", "queue_name": ""}, "queue_name"),
    ({"topic": "toolbox.echo", "queue_name": 1}, "queue_name"),
    ({"topic": "toolbox.echo", "dedupe_key": "k" * 256}, "dedupe_key"),
    ({"topic": "toolbox.echo", "run_at": "2031-01-01T00:00:00Z", "delay": 5}, "run_at or delay"),
])
def test_enqueue__bad_field_400_names_it_and_nothing_written(api, body, field):
    response = post(api, body)

    assert field in assert_error(response, 400)
    assert response.json()["errors"]
    assert row_count() == 0


@pytest.mark.parametrize("body", [[{"topic": "toolbox.echo"}], "toolbox.echo", 5, None])
def test_enqueue__body_not_an_object_400(api, body):
    assert_error(post(api, body), 400)
    assert row_count() == 0


def test_enqueue__malformed_json_400(api):
    response = api.post(url(), '{"topic": "toolbox.echo", ', content_type="application/json")

    assert "JSON" in assert_error(response, 400)
    assert row_count() == 0


def test_enqueue__nan_in_body_400(api):
    response = api.post(url(), '{"topic": "toolbox.echo", "payload": {"x": NaN}}',
                        content_type="application/json")

    assert_error(response, 400)
    assert row_count() == 0


def test_enqueue__number_too_large_for_a_float_400(api):
    response = api.post(url(), '{"topic": "toolbox.echo", "payload": {"x": 1e999}}',
                        content_type="application/json")

    assert "payload" in assert_error(response, 400)
    assert row_count() == 0


def test_enqueue__nul_character_in_payload_400(api):
    """PostgreSQL's jsonb cannot hold \\u0000: refused on every database alike, not a 500."""
    response = post(api, {"topic": "toolbox.echo", "payload": {"text": "a\u0000b"}})

    assert "payload" in assert_error(response, 400)
    assert row_count() == 0


def test_store__nul_character_in_payload_is_invalid_payload(store):
    with pytest.raises(jobs.errors.InvalidPayload):
        store.enqueue("toolbox.echo", {"text": "a\u0000b"})
    assert row_count() == 0


def test_enqueue__nul_character_in_dedupe_key_400(api):
    assert "dedupe_key" in assert_error(post(api, {"topic": "toolbox.echo", "dedupe_key": "a\u0000"}), 400)
    assert row_count() == 0


def test_enqueue__form_body_415(api):
    response = api.post(url(), "topic=toolbox.echo", content_type="application/x-www-form-urlencoded")

    assert_error(response, 415)
    assert row_count() == 0


# -- ALLOWED_TOPICS and MAX_PAYLOAD_SIZE -----------------------------------------------------------


def test_allowed_topics__topic_outside_403_nothing_written(settings, api):
    settings.JOBS = {**ON, "ALLOWED_TOPICS": ["reports.*"]}

    detail = assert_error(post(api, {"topic": "toolbox.echo"}), 403)

    assert "'toolbox.echo'" in detail and "ALLOWED_TOPICS" in detail
    assert row_count() == 0


def test_allowed_topics__matching_topic_201_even_without_handler(settings, api):
    settings.JOBS = {**ON, "ALLOWED_TOPICS": ["reports.*", "toolbox.echo"]}

    assert post(api, {"topic": "reports.daily"}).status_code == 201
    assert post(api, {"topic": "toolbox.echo"}).status_code == 201
    assert sorted(Job.objects.values_list("topic", flat=True)) == ["reports.daily", "toolbox.echo"]


def test_allowed_topics__empty_list_refuses_every_topic(settings, api):
    settings.JOBS = {**ON, "ALLOWED_TOPICS": []}

    assert_error(post(api, {"topic": "toolbox.echo"}), 403)
    assert row_count() == 0


def test_allowed_topics__checked_after_permissions(settings, anon):
    settings.JOBS = {**ON, "ALLOWED_TOPICS": ["reports.*"]}

    assert "ALLOWED_TOPICS" not in assert_error(post(anon, {"topic": "toolbox.echo"}), 403)


def test_max_payload_size__over_413_nothing_written(settings, api):
    settings.JOBS = {**ON, "MAX_PAYLOAD_SIZE": 20}

    # the size is that of the compact JSON stored: {"s":"xxxxxxxxxxxx"} is 20 bytes
    assert post(api, {"topic": "toolbox.echo", "payload": {"s": "x" * 12}}).status_code == 201
    detail = assert_error(post(api, {"topic": "toolbox.echo", "payload": {"s": "x" * 13}}), 413)

    assert "21 bytes" in detail and "MAX_PAYLOAD_SIZE" in detail
    assert list(Job.objects.values_list("payload", flat=True)) == [{"s": "x" * 12}]


def test_max_payload_size__from_environment(http_on, monkeypatch, api):
    monkeypatch.setenv("JOBS_MAX_PAYLOAD_SIZE", "10")
    jobs_settings.reset()
    try:
        assert_error(post(api, {"topic": "toolbox.echo", "payload": ["x" * 10]}), 413)
    finally:
        monkeypatch.delenv("JOBS_MAX_PAYLOAD_SIZE")
        jobs_settings.reset()

    assert row_count() == 0


# -- GET /api/jobs/ ------------------------------------------------------------------------------


def test_list__newest_first_paginated(api, store):
    ids = [store.enqueue("toolbox.echo", {"i": i}).id for i in range(3)]

    body = api.get(url()).json()

    assert (body["count"], body["next"], body["previous"]) == (3, None, None)
    assert [job["id"] for job in body["results"]] == ids[::-1]
    assert body["results"][0]["payload"] == {"i": 2}
    assert set(body["results"][0]) == JOB_FIELDS


def test_list__pages_of_50_by_default_and_page_size(api, store):
    store.enqueue_many([{"topic": "toolbox.echo", "payload": {"i": i}} for i in range(55)])

    first = api.get(url()).json()
    assert first["count"] == 55 and len(first["results"]) == 50 and first["next"].endswith("page=2")
    second = api.get(url(), {"page": 2}).json()
    assert len(second["results"]) == 5 and second["next"] is None and second["previous"]
    small = api.get(url(), {"page_size": 10, "page": 3}).json()
    assert [job["payload"]["i"] for job in small["results"]] == list(range(34, 24, -1))


def test_list__page_size_up_to_500(operator, store):
    store.enqueue_many([{"topic": "toolbox.echo"} for _ in range(501)])

    assert len(operator.get(url(), {"page_size": 500}).json()["results"]) == 500


@pytest.mark.parametrize("page_size", ["501", "10000", "0", "-1", "abc", "1.5", ""])
def test_list__bad_page_size_400_names_it(operator, store, page_size):
    store.enqueue("toolbox.echo")

    detail = assert_error(operator.get(url(), {"page_size": page_size}), 400)

    assert detail.startswith("page_size: ")


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", ""])
def test_list__bad_page_400_names_it(operator, store, page):
    store.enqueue("toolbox.echo")

    assert assert_error(operator.get(url(), {"page": page}), 400).startswith("page: ")


@pytest.mark.parametrize("query, field", [({"status": ""}, "status"), ({"topic": ""}, "topic"),
                                          ({"topic": "a\u0000"}, "topic")])
def test_list__empty_or_nul_filter_400_names_it(operator, query, field):
    assert assert_error(operator.get(url(), query), 400).startswith(f"{field}: ")


def test_list__page_past_the_end_404_json(operator, store):
    store.enqueue("toolbox.echo")

    assert_error(operator.get(url(), {"page": 2}), 404)


def test_list__filter_by_status_and_topic(api, store):
    echo = store.enqueue("toolbox.echo")
    failed = mark(store.enqueue("toolbox.fail"), JobStatus.FAILED)
    done = mark(store.enqueue("toolbox.echo"), JobStatus.COMPLETED)

    def ids(**query):
        return [job["id"] for job in api.get(url(), query).json()["results"]]

    assert ids(status="pending") == [echo.id]
    assert ids(status="failed") == [failed.id]
    assert ids(topic="toolbox.echo") == [done.id, echo.id]
    assert ids(topic="toolbox.echo", status="completed") == [done.id]
    assert ids(topic="toolbox.fail", status="completed") == []
    assert ids(topic="nothing") == []
    assert ids(topic=" toolbox.echo") == []  # the exact topic: no trimming


def test_list__unknown_status_400(api):
    assert "status" in assert_error(api.get(url(), {"status": "sleeping"}), 400)


# -- GET /api/jobs/<id>/ -------------------------------------------------------------------------


def test_get__the_job(api, store):
    job = mark(store.enqueue("toolbox.fail", {"n": 1}, priority=5), JobStatus.FAILED,
               last_error="RuntimeError: boom", attempts=4, retries=3)

    body = api.get(url(job.id)).json()

    assert set(body) == JOB_FIELDS
    assert {key: body[key] for key in ("id", "topic", "payload", "status", "priority", "attempts",
                                       "retries", "last_error")} == {
        "id": job.id, "topic": "toolbox.fail", "payload": {"n": 1}, "status": "failed",
        "priority": 5, "attempts": 4, "retries": 3, "last_error": "RuntimeError: boom"}


@pytest.mark.parametrize("job_id", [10**6, 2**63 - 1, 2**64])
def test_get__missing_404_json(api, job_id):
    assert_error(api.get(url(job_id)), 404)


@pytest.mark.parametrize("job_id", ["abc", "-1", "1.5", "%20", "a%2Fb", "%00"])
@pytest.mark.parametrize("method, action", [("get", None), ("delete", None), ("post", "requeue")])
def test_malformed_id__404_json_like_a_missing_job(operator, store, job_id, method, action):
    store.enqueue("toolbox.echo")

    assert "whole numbers" in assert_error(getattr(operator, method)(url(job_id, action)), 404)
    assert Job.objects.count() == 1


def test_malformed_id__without_the_slash_redirects_to_the_slash_first(operator):
    response = operator.get("/api/jobs/abc")

    assert response.status_code == 301 and response["Location"] == "/api/jobs/abc/"


def test_malformed_id__django_404_while_the_api_is_off(admin):
    response = admin.get(url("abc"))

    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")


# -- DELETE /api/jobs/<id>/ ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.COMPLETED, JobStatus.FAILED])
def test_delete__204_and_gone(api, store, status):
    job = mark(store.enqueue("toolbox.echo"), status)
    other = store.enqueue("toolbox.echo")

    response = api.delete(url(job.id))

    assert response.status_code == 204
    assert response.content == b""
    assert list(Job.objects.values_list("id", flat=True)) == [other.id]


def test_delete__processing_job_409_row_kept(api, store):
    job = mark(store.enqueue("toolbox.echo"), JobStatus.PROCESSING)

    detail = assert_error(api.delete(url(job.id)), 409)

    assert str(job.id) in detail
    kept = Job.objects.get()
    assert (kept.id, kept.status, kept.locked_by) == (job.id, JobStatus.PROCESSING, "node-1")


def test_delete__missing_404_json(api):
    assert_error(api.delete(url(10**6)), 404)


# -- POST /api/jobs/<id>/requeue/ ----------------------------------------------------------------


def test_requeue__failed_job_pending_due_now_history_kept(api, store):
    job = mark(store.enqueue("toolbox.fail", delay=3600), JobStatus.FAILED, attempts=4, retries=3,
               last_error="RuntimeError: boom", finished_at=timezone.now())
    before = timezone.now()

    response = api.post(url(job.id, "requeue"))

    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert (job.status, job.attempts, job.finished_at, job.last_error) == (
        JobStatus.PENDING, 0, None, "RuntimeError: boom")
    assert before <= job.run_at <= timezone.now()
    assert response.json()["status"] == "pending" and response.json()["id"] == job.id


def test_requeue__completed_job_runs_again(api, store):
    job = mark(store.enqueue("toolbox.echo"), JobStatus.COMPLETED, result={"ok": True})

    assert api.post(url(job.id, "requeue")).json()["result"] is None
    assert Job.objects.get().status == JobStatus.PENDING


def test_requeue__processing_job_409_unchanged(api, store):
    job = mark(store.enqueue("toolbox.echo"), JobStatus.PROCESSING)

    assert_error(api.post(url(job.id, "requeue")), 409)
    assert Job.objects.get().status == JobStatus.PROCESSING


def test_requeue__dedupe_key_held_by_a_pending_job_409_unchanged(api):
    now = timezone.now()
    failed, pending = (Job.objects.create(topic="toolbox.echo", status=status, dedupe_key="report:42",
                                          run_at=now, created=now, updated=now)
                       for status in (JobStatus.FAILED, JobStatus.PENDING))

    detail = assert_error(api.post(url(failed.id, "requeue")), 409)

    assert "'report:42'" in detail and str(pending.id) in detail
    assert dict(Job.objects.values_list("id", "status")) == {failed.id: JobStatus.FAILED,
                                                            pending.id: JobStatus.PENDING}


def test_requeue__pending_job_with_its_own_dedupe_key_200(api):
    now = timezone.now()
    job = Job.objects.create(topic="toolbox.echo", status=JobStatus.PENDING, dedupe_key="k",
                             run_at=now + timedelta(hours=1), created=now, updated=now)

    assert api.post(url(job.id, "requeue")).status_code == 200
    job.refresh_from_db()
    assert job.run_at <= timezone.now() and job.dedupe_key == "k"


def test_requeue__missing_404_json(api):
    assert_error(api.post(url(10**6, "requeue")), 404)
    assert row_count() == 0


def test_requeue__get_405(api, store):
    job = mark(store.enqueue("toolbox.echo"), JobStatus.FAILED)

    assert_error(api.get(url(job.id, "requeue")), 405)
    assert Job.objects.get().status == JobStatus.FAILED


# -- GET /api/jobs/stats/ ------------------------------------------------------------------------


def test_stats__empty_queue(api):
    assert api.get(url(action="stats")).json() == {
        "by_status": {"pending": 0, "processing": 0, "completed": 0, "failed": 0},
        "by_topic": {}, "oldest_due_age": 0.0, "due": 0, "finished_estimated": False}


def test_stats__counts_by_status_and_topic_and_oldest_due_age(api, store):
    store.enqueue("toolbox.echo", run_at=timezone.now() - timedelta(seconds=120))
    store.enqueue("toolbox.echo")
    store.enqueue("toolbox.echo", delay=3600)  # pending, not due
    mark(store.enqueue("toolbox.fail"), JobStatus.FAILED)
    mark(store.enqueue("toolbox.fail"), JobStatus.PROCESSING)
    mark(store.enqueue("toolbox.echo"), JobStatus.COMPLETED)

    body = api.get(url(action="stats")).json()

    assert body["by_status"] == {"pending": 3, "processing": 1, "completed": 1, "failed": 1}
    assert body["by_topic"] == {"toolbox.echo": {"pending": 3, "completed": 1},
                                "toolbox.fail": {"failed": 1, "processing": 1}}
    assert body["due"] == 2
    assert 120 <= body["oldest_due_age"] < 180


# -- errors --------------------------------------------------------------------------------------


def test_unknown_method__405_json(api, store):
    job = store.enqueue("toolbox.echo")

    assert_error(api.put(url(job.id), {"topic": "toolbox.echo"}, format="json"), 405)
    assert_error(api.patch(url(job.id), {"priority": 5}, format="json"), 405)
    assert Job.objects.get().priority == 0


def test_unexpected_error__json_500_without_traceback(api, store, monkeypatch):
    def broken(self):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(type(store), "stats", broken)

    assert "fire" not in assert_error(api.get(url(action="stats")), 500)


# -- OpenAPI schema ------------------------------------------------------------------------------

JOBS_PATHS = {"/api/jobs/": {"get", "post"}, "/api/jobs/{id}/": {"get", "delete"},
              "/api/jobs/{id}/requeue/": {"post"}, "/api/jobs/stats/": {"get"}}


def schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def jobs_paths(client) -> dict[str, set[str]]:
    return {path: set(methods) - {"parameters"} for path, methods in schema(client)["paths"].items()
            if path.startswith("/api/jobs/")}


def test_schema__lists_the_jobs_paths_and_methods(api):
    assert jobs_paths(api) == JOBS_PATHS


def test_schema__enqueue_body_and_responses(api):
    document = schema(api)
    enqueue = document["paths"]["/api/jobs/"]["post"]

    assert set(enqueue["responses"]) >= {"201", "400", "403", "413"}
    ref = enqueue["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    body = document["components"]["schemas"][ref]
    assert set(body["properties"]) >= {"topic", "payload", "run_at", "delay", "priority", "max_retries",
                                       "dedupe_key"}
    assert body["required"] == ["topic"]
    assert "409" in document["paths"]["/api/jobs/{id}/"]["delete"]["responses"]
    list_parameters = {p["name"] for p in document["paths"]["/api/jobs/"]["get"]["parameters"]}
    assert list_parameters >= {"status", "topic", "page", "page_size"}


def test_schema__list_parameters_bounded_as_the_api_checks_them(operator):
    listing = schema(operator)["paths"]["/api/jobs/"]["get"]
    parameters = {p["name"]: p["schema"] for p in listing["parameters"]}

    assert parameters["page_size"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert parameters["page"] == {"type": "integer", "minimum": 1}
    assert parameters["topic"]["minLength"] == 1 and parameters["status"]["minLength"] == 1
    assert set(listing["responses"]) == {"200", "400", "403", "404"}  # 404: a page past the end


def test_schema__enqueue_strings_are_never_empty(operator):
    document = schema(operator)
    ref = document["paths"]["/api/jobs/"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][ref.rsplit("/", 1)[1]]

    assert {name: body["properties"][name]["minLength"] for name in ("topic", "dedupe_key", "queue_name")} == {
        "topic": 1, "dedupe_key": 1, "queue_name": 1}


def test_schema__no_jobs_paths_while_http_is_off(admin):
    assert jobs_paths(admin) == {}


def test_schema__no_jobs_paths_while_jobs_is_disabled(settings, admin):
    settings.JOBS = {**ON, "DISABLED": True}

    assert jobs_paths(admin) == {}


def test_schema__no_jobs_paths_while_the_plugin_is_disabled(api):
    disable_in_registry("jobs")

    assert jobs_paths(api) == {}


def test_enqueue__a_body_nested_too_deeply_is_400(api):
    body = "[" * 50_000 + "]" * 50_000
    response = api.post(url(), data=body, content_type="application/json")
    assert "nested too deeply" in assert_error(response, 400)
    assert row_count() == 0
