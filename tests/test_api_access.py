"""Who may do what over the kv and jobs HTTP APIs with their default permission classes: the
models' permissions, as the admin asks them; staff status neither needed nor enough.

Every user calls every endpoint group of both APIs with an API token (the documented way in);
a refusal is a 403 with a JSON detail and leaves every row as it was.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

import jobs
import kv
from jobs.models import Job, JobStatus
from kv.models import KVEntry

pytestmark = pytest.mark.django_db

#: each user: (is_staff, is_superuser, permissions)
USERS = {
    "anonymous": None,
    "plain": (False, False, ()),
    "staff": (True, False, ()),
    "staff_viewer": (True, False, ("kv.view_kventry", "jobs.view_job")),
    "enqueuer": (False, False, ("jobs.add_job",)),
    "changer": (False, False, ("kv.change_kventry", "jobs.change_job")),
    "remover": (False, False, ("kv.delete_kventry", "jobs.delete_job")),
    "superuser": (True, True, ()),
}

READERS = {"staff_viewer", "changer", "superuser"}

# (name, method, path, body, status when allowed, who is allowed)
KV_OPERATIONS = [
    ("list", "get", "/api/kv/keys/", None, 200, READERS),
    ("get", "get", "/api/kv/keys/a/", None, 200, READERS),
    ("get_hash", "get", "/api/kv/keys/h/hash/", None, 200, READERS),
    ("set", "put", "/api/kv/keys/a/", {"value": 2}, 200, {"changer", "superuser"}),
    ("incr", "post", "/api/kv/keys/n/incr/", {"amount": 1}, 200, {"changer", "superuser"}),
    ("expire", "post", "/api/kv/keys/a/expire/", {"ttl": 100}, 200, {"changer", "superuser"}),
    ("hash_update", "patch", "/api/kv/keys/h/hash/", {"fields": {"f": 2}}, 200, {"changer", "superuser"}),
    ("delete", "delete", "/api/kv/keys/a/", None, 204, {"remover", "superuser"}),
    # an expire of 0 deletes: it needs both
    ("expire_now", "post", "/api/kv/keys/a/expire/", {"ttl": 0}, 200, {"superuser"}),
]

JOB_OPERATIONS = [
    ("enqueue", "post", "/api/jobs/", {"topic": "toolbox.echo"}, 201, {"enqueuer", "superuser"}),
    ("list", "get", "/api/jobs/", None, 200, READERS),
    ("get", "get", "/api/jobs/{id}/", None, 200, READERS),
    ("stats", "get", "/api/jobs/stats/", None, 200, READERS),
    ("requeue", "post", "/api/jobs/{id}/requeue/", None, 200, {"changer", "superuser"}),
    ("delete", "delete", "/api/jobs/{id}/", None, 204, {"remover", "superuser"}),
]


@pytest.fixture
def apis_on(settings):
    settings.KV = {"HTTP_ENABLED": True}
    settings.JOBS = {"HTTP_ENABLED": True}


def make_user(who: str) -> User | None:
    if USERS[who] is None:
        return None
    is_staff, is_superuser, permissions = USERS[who]
    user = User.objects.create_user(who, password="pw", is_staff=is_staff, is_superuser=is_superuser)
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def token_client(who: str) -> APIClient:
    """A client that sends the user's API token (anonymous: no credentials)."""
    client = APIClient()
    user = make_user(who)
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def kv_rows() -> list[tuple]:
    return sorted(KVEntry.objects.values_list("key", "type", "value", "expire_at"))


def job_rows() -> list[tuple]:
    return list(Job.objects.order_by("id").values_list("id", "topic", "status", "run_at", "last_error", "payload"))


def assert_refused(response, who: str) -> None:
    assert response.status_code == 403, response.content
    detail = response.json()["detail"]
    if who == "anonymous":
        assert detail == "Authentication credentials were not provided."
    else:
        assert detail.startswith("You need the ") and " permission to " in detail


@pytest.mark.parametrize("who", list(USERS))
@pytest.mark.parametrize("name, method, path, body, status, allowed", KV_OPERATIONS,
                         ids=[operation[0] for operation in KV_OPERATIONS])
def test_kv__each_user_against_each_endpoint(apis_on, who, name, method, path, body, status, allowed):
    store = kv.get_store()
    store.set("a", 1)
    store.set("n", 5)
    store.hset("h", "f", 1)
    client = token_client(who)
    before = kv_rows()

    response = getattr(client, method)(path, body, format="json")

    if who in allowed:
        assert response.status_code == status, response.content
    else:
        assert_refused(response, who)
        assert kv_rows() == before


@pytest.mark.parametrize("who", list(USERS))
@pytest.mark.parametrize("name, method, path, body, status, allowed", JOB_OPERATIONS,
                         ids=[operation[0] for operation in JOB_OPERATIONS])
def test_jobs__each_user_against_each_endpoint(apis_on, who, name, method, path, body, status, allowed):
    job = jobs.get_job_store().enqueue("toolbox.echo", {"secret": "s3cr3t"})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.FAILED, last_error="boom")
    client = token_client(who)
    before = job_rows()

    response = getattr(client, method)(path.format(id=job.id), body, format="json")

    if who in allowed:
        assert response.status_code == status, response.content
    else:
        assert_refused(response, who)
        assert b"s3cr3t" not in response.content
        assert job_rows() == before


def test_kv__a_refusal_names_the_permission_needed(apis_on):
    store = kv.get_store()
    store.set("a", 1)
    staff = token_client("staff_viewer")

    assert staff.get("/api/kv/keys/a/").json()["value"] == 1
    response = staff.put("/api/kv/keys/a/", {"value": 2}, format="json")

    assert response.json() == {"detail": "You need the kv.change_kventry permission to change keys."}
    assert store.get("a") == 1


def test_jobs__a_refusal_names_the_permission_needed(apis_on):
    job = jobs.get_job_store().enqueue("toolbox.echo")
    viewer = token_client("staff_viewer")

    response = viewer.delete(f"/api/jobs/{job.id}/")

    assert response.json() == {"detail": "You need the jobs.delete_job permission to delete jobs."}
    assert Job.objects.filter(pk=job.id).exists()


def test_session__staff_without_permissions_is_refused_like_with_a_token(apis_on):
    kv.get_store().set("a", 1)
    client = APIClient()
    client.force_login(make_user("staff"))

    assert client.get("/api/kv/keys/").status_code == 403
    assert client.delete("/api/kv/keys/a/").status_code == 403
    assert client.get("/api/jobs/").status_code == 403
    assert kv.get_store().get("a") == 1


def test_inactive_superuser__refused(apis_on):
    client = token_client("superuser")
    User.objects.filter(username="superuser").update(is_active=False)

    assert client.get("/api/kv/keys/").status_code in (401, 403)
    assert client.get("/api/jobs/").status_code in (401, 403)


def test_enqueue_only__a_dedupe_hit_shows_id_and_status_only(apis_on):
    store = jobs.get_job_store()
    job = store.enqueue("toolbox.echo", {"secret": "s3cr3t"}, dedupe_key="k")

    response = token_client("enqueuer").post(
        "/api/jobs/", {"topic": "toolbox.echo", "payload": {}, "dedupe_key": "k"}, format="json")

    assert response.status_code == 200
    assert response.json() == {"id": job.id, "topic": "toolbox.echo", "status": "pending", "deduplicated": True}


def test_viewer_with_add_job__a_dedupe_hit_shows_the_whole_job(apis_on):
    store = jobs.get_job_store()
    job = store.enqueue("toolbox.echo", {"secret": "s3cr3t"}, dedupe_key="k")
    client = token_client("staff_viewer")
    user = User.objects.get(username="staff_viewer")
    user.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="add_job"))

    response = client.post("/api/jobs/", {"topic": "toolbox.echo", "dedupe_key": "k"}, format="json")

    assert response.status_code == 200
    assert response.json()["id"] == job.id and response.json()["payload"] == {"secret": "s3cr3t"}
