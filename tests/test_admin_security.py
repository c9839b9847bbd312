"""The admin refuses what an attacker would try: list lookups other than the filters'
(a 400, not a slow query or a 500), and django-q2's pages (schedules run any function)
for anyone but superusers, whatever model permissions they hold."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure, OrmQ, Schedule, Task

import kv
from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db

KEYS = "admin:kv_kventry_changelist"
JOBS = "admin:jobs_job_changelist"
DASHBOARD = "admin:jobs_job_dashboard"
SCHEDULES = "admin:django_q_schedule_changelist"
#: a pattern that backtracks for ever on a long enough string (41 s on SQLite before)
CATASTROPHIC = "^(a+)+$"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff_with(username: str, permissions) -> Client:
    user = User.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.add(*permissions)
    return logged_in(user)


@pytest.fixture
def viewer() -> Client:
    """Staff who may view keys and jobs, and nothing more."""
    return staff_with("viewer", Permission.objects.filter(codename__in=["view_kventry", "view_job"]))


@pytest.fixture
def q_staff() -> Client:
    """Staff holding every django_q model permission (add, change, delete, view)."""
    return staff_with("scheduler", Permission.objects.filter(content_type__app_label="django_q"))


@pytest.fixture(params=["viewer", "superuser"])
def reader(request, admin_client) -> Client:
    return admin_client if request.param == "superuser" else request.getfixturevalue("viewer")


@pytest.fixture(params=[False, True], ids=["debug-off", "debug-on"])
def debug(request, settings) -> bool:
    settings.DEBUG = request.param
    return request.param


@pytest.fixture
def rows() -> None:
    """Keys of two types and jobs of two topics and statuses, one finished."""
    store = kv.get_store()
    store.set("user:1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab")
    store.hset("profile:1", "name", "x")
    now = timezone.now()
    Job.objects.create(topic="mail.send", status=JobStatus.PENDING, run_at=now, created=now, updated=now)
    Job.objects.create(topic="report.build", status=JobStatus.FAILED, run_at=now, created=now,
                       updated=now, finished_at=now - timedelta(hours=1))


def query_links(content: str, base: str) -> list[str]:
    """Every link of a page that carries a query string, made absolute against ``base``."""
    links = {html.unescape(href) for href in re.findall(r'href="([^"]*\?[^"#]+)"', content)}
    return sorted(base + link if link.startswith("?") else link for link in links)


# -- lookups of the lists ------------------------------------------------------------------


@pytest.mark.parametrize(("url_name", "params"), [
    (KEYS, {"key__regex": CATASTROPHIC}),
    (KEYS, {"value__contains": "x"}),  # a 500 before: JSON containment is not on SQLite
    (KEYS, {"key__startswith": "user"}),
    (KEYS, {"type__in": "value"}),  # the type filter takes type__exact only
    (KEYS, {"expire_at__gt": "0"}),
    (KEYS, {"no_such_field": "1"}),
    (JOBS, {"topic__regex": CATASTROPHIC}),
    (JOBS, {"payload__contains": "secret"}),
    (JOBS, {"last_error__icontains": "password"}),
    (JOBS, {"status__in": "failed"}),
    (JOBS, {"created__gte": "2020-01-01"}),  # no date hierarchy on created
    (JOBS, {"status__exact": "failed", "id__gt": "0"}),  # one bad among good ones
])
def test_list__a_lookup_no_filter_uses_is_a_400(reader, debug, rows, url_name, params):
    response = reader.get(reverse(url_name), params)
    assert response.status_code == 400


def test_list__a_refused_lookup_names_itself_to_staff_with_debug_on(viewer, settings, rows):
    settings.DEBUG = True
    response = viewer.get(reverse(JOBS), {"topic__regex": CATASTROPHIC})
    assert response.status_code == 400
    assert "Filtering by topic__regex not allowed" in response.content.decode()


def test_list__a_schedule_lookup_no_filter_uses_is_a_400_to_a_superuser(admin_client, debug):
    response = admin_client.get(reverse(SCHEDULES), {"func__regex": CATASTROPHIC})
    assert response.status_code == 400


@pytest.mark.parametrize(("url_name", "params", "shown"), [
    (KEYS, {"type__exact": "hash"}, ["profile:1"]),
    (KEYS, {"type__exact": "value", "q": "user:*", "o": "1"}, ["user:1"]),
    (JOBS, {"status__exact": "failed"}, ["report.build"]),
    (JOBS, {"topic": "mail.send"}, ["mail.send"]),
    (JOBS, {"status__isnull": "False", "p": "1"}, ["mail.send", "report.build"]),
])
def test_list__the_filters_still_filter(reader, rows, url_name, params, shown):
    response = reader.get(reverse(url_name), params)
    assert response.status_code == 200
    found = [getattr(row, "key", None) or row.topic for row in response.context["cl"].result_list]
    assert sorted(found) == shown


def test_list__the_date_filters_still_filter(reader, rows):
    # no date hierarchy on the unindexed ``created``: its parameters are refused like any other
    today = timezone.localdate()
    by_day = {"created__year": today.year, "created__month": today.month, "created__day": today.day}
    assert reader.get(reverse(JOBS), by_day).status_code == 400
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    finished = {"finished_at__gte": str(midnight - timedelta(days=7)),
                "finished_at__lt": str(midnight + timedelta(days=1))}
    assert [job.topic for job in reader.get(reverse(JOBS), finished).context["cl"].result_list] == [
        "report.build"]


@pytest.mark.parametrize("url_name", [KEYS, JOBS])
def test_list__every_filter_and_date_link_of_the_page_opens(reader, rows, url_name):
    base = reverse(url_name)
    links = query_links(reader.get(base).content.decode(), base)
    assert len(links) >= 3  # the filters' choices at least
    for link in links:
        assert reader.get(link).status_code == 200, link


def test_dashboard__its_links_to_filtered_lists_open(viewer, rows):
    links = query_links(viewer.get(reverse(DASHBOARD)).content.decode(), reverse(JOBS))
    assert any("status__exact=" in link for link in links)
    assert any("topic=" in link for link in links)
    for link in links:
        assert viewer.get(link).status_code == 200, link
    failed = viewer.get(f"{reverse(JOBS)}?status__exact={JobStatus.FAILED}").context["cl"].result_list
    assert [job.topic for job in failed] == ["report.build"]


def test_nodes_and_plugins__their_lists_filter_nothing_so_lookups_are_ignored(admin_client):
    # their pages are built by hand (no Django change list): no parameter reaches a query
    for url_name in ["admin:tachycore_node_changelist", "admin:tachycore_applicationplugin_changelist"]:
        assert admin_client.get(reverse(url_name), {"id__regex": CATASTROPHIC}).status_code == 200


# -- django-q2's pages -----------------------------------------------------------------------


@pytest.fixture
def schedule() -> Schedule:
    return Schedule.objects.create(name="tidy", func="math.floor", args="1", schedule_type=Schedule.HOURLY)


@pytest.fixture
def tasks() -> tuple[Task, Task]:
    now = timezone.now()
    fields = {"func": "math.floor", "args": (1,), "started": now, "stopped": now}
    return (Task.objects.create(id="a" * 32, name="done-one", success=True, **fields),
            Task.objects.create(id="b" * 32, name="failed-one", success=False, **fields))


def schedule_pages(schedule: Schedule) -> list[str]:
    return [reverse(SCHEDULES), reverse("admin:django_q_schedule_add"),
            reverse("admin:django_q_schedule_change", args=[schedule.pk]),
            reverse("admin:django_q_schedule_delete", args=[schedule.pk]),
            reverse("admin:django_q_schedule_history", args=[schedule.pk])]


def test_schedules__staff_with_every_django_q_permission_get_403(q_staff, debug, schedule):
    for url in schedule_pages(schedule):
        assert q_staff.get(url).status_code == 403, url


def test_schedules__staff_cannot_write_one(q_staff, schedule):
    before = set(Schedule.objects.values_list("pk", "func"))
    response = q_staff.post(reverse("admin:django_q_schedule_add"), {
        "name": "x", "func": "os.system", "args": "'id'", "schedule_type": Schedule.ONCE,
        "repeats": "-1", "next_run_0": "2030-01-01", "next_run_1": "00:00:00"})
    assert response.status_code == 403
    changed = q_staff.post(reverse("admin:django_q_schedule_change", args=[schedule.pk]),
                           {"func": "os.system"})
    assert changed.status_code == 403
    deleted = q_staff.post(reverse("admin:django_q_schedule_delete", args=[schedule.pk]), {"post": "yes"})
    assert deleted.status_code == 403
    assert set(Schedule.objects.values_list("pk", "func")) == before


def test_tasks__staff_cannot_see_or_resubmit_them(q_staff, tasks):
    for model in ["success", "failure", "ormq"]:
        assert q_staff.get(reverse(f"admin:django_q_{model}_changelist")).status_code == 403, model
    for model, task in zip(["success", "failure"], tasks, strict=True):
        assert q_staff.get(reverse(f"admin:django_q_{model}_change", args=[task.pk])).status_code == 403
        response = q_staff.post(reverse(f"admin:django_q_{model}_changelist"), {
            "action": "resubmit_task", "_selected_action": [task.pk], "index": "0"})
        assert response.status_code == 403
    assert OrmQ.objects.count() == 0 and Failure.objects.count() == 1


def test_schedules__absent_from_the_index_and_the_jobs_pages_of_staff(q_staff, admin_client):
    schedules = reverse(SCHEDULES)
    user = User.objects.get(username="scheduler")
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    for url in [reverse("admin:index"), reverse("admin:app_list", args=["jobs"]), reverse(JOBS),
                reverse(DASHBOARD)]:
        response = q_staff.get(url)
        assert response.status_code == 200, url
        assert "/admin/django_q/" not in response.content.decode(), url
        assert schedules in admin_client.get(url).content.decode(), url


def test_schedules__a_superuser_has_django_q2s_pages(admin_client, schedule, tasks):
    for url in schedule_pages(schedule):
        assert admin_client.get(url).status_code == 200, url
    listed = admin_client.get(reverse(SCHEDULES)).context["cl"].result_list
    assert "tidy" in [row.name for row in listed]
    assert [task.name for task in admin_client.get(
        reverse("admin:django_q_success_changelist")).context["cl"].result_list] == ["done-one"]
    assert admin_client.get(reverse("admin:django_q_ormq_changelist")).status_code == 200


def test_schedules__a_superuser_adds_one(admin_client):
    response = admin_client.post(reverse("admin:django_q_schedule_add"), {
        "name": "nightly", "func": "math.floor", "args": "1", "kwargs": "",
        "schedule_type": Schedule.DAILY, "minutes": "", "repeats": "-1",
        "next_run_0": "2030-01-01", "next_run_1": "00:00:00", "cron": "", "cluster": "",
        "intended_date_kwarg": ""})
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assert Schedule.objects.filter(name="nightly", func="math.floor").exists()


def test_schedules__every_filter_link_opens_for_a_superuser(admin_client, schedule):
    base = reverse(SCHEDULES)
    links = query_links(admin_client.get(base).content.decode(), base)
    assert any("schedule_type__exact=" in link for link in links)
    for link in links:
        assert admin_client.get(link).status_code == 200, link
