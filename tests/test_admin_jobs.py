"""The jobs admin: read-only list and detail, requeue and delete through the store, the dashboard."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from jobs.models import Job, JobStatus

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:jobs_job_changelist"
DASHBOARD = "admin:jobs_job_dashboard"

TRACEBACK = ('Traceback (most recent call last):\n  File "handlers.py", line 3, in send\n'
             "    raise ValueError(\"no <mailbox>\")\nValueError: no <mailbox>")


def make_job(topic: str = "mail.send", status: str = JobStatus.PENDING, **fields) -> Job:
    now = timezone.now()
    fields.setdefault("run_at", now)
    if status == JobStatus.PROCESSING:
        fields.setdefault("locked_by", "node-7")
        fields.setdefault("locked_until", now + timedelta(minutes=5))
    if status in (JobStatus.COMPLETED, JobStatus.FAILED):
        fields.setdefault("finished_at", now)
    return Job.objects.create(topic=topic, status=status, created=fields.pop("created", now),
                              updated=now, **fields)


def change_url(job: Job) -> str:
    return reverse("admin:jobs_job_change", args=[job.pk])


def run_action(client: Client, action: str, *jobs: Job, **extra):
    data = {"action": action, "index": "0", "select_across": "0",
            "_selected_action": [str(job.pk) for job in jobs]}
    return client.post(reverse(CHANGELIST), data, **extra)


def message_texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def user_client(django_user_model) -> Client:
    """A logged-in user who is not staff."""
    user = django_user_model.objects.create_user(username="reader", password="pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(django_user_model) -> Client:
    """Staff who may view jobs, and nothing more."""
    user = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client = Client()
    client.force_login(user)
    return client


# -- the list ------------------------------------------------------------------------------


def test_list__attempts_count_the_first_run_among_those_allowed(admin_client):
    make_job("mail.send", JobStatus.FAILED, attempts=1, max_retries=0)
    content = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "1 / 1" in content and "1 / 0" not in content


def test_list__shows_the_columns_and_a_status_badge(admin_client):
    job = make_job("mail.send", JobStatus.FAILED, priority=5, attempts=3, max_retries=3)
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    content = response.content.decode()
    assert "mail.send" in content
    assert '<span class="jobs-badge jobs-badge-failed">Failed</span>' in content
    assert "3 / 4" in content  # three attempts of the four allowed (one run, three retries)
    assert f'href="{change_url(job)}"' in content
    # no "Add job" button, and links to the dashboard and the django-q2 schedules
    assert reverse("admin:jobs_job_add") not in content
    assert reverse(DASHBOARD) in content
    assert reverse("admin:django_q_schedule_changelist") in content


def test_list__filters_by_status(admin_client):
    failed = make_job("a.topic", JobStatus.FAILED)
    pending = make_job("a.topic", JobStatus.PENDING)
    response = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"})
    assert [job.pk for job in response.context["cl"].result_list] == [failed.pk]
    assert pending.pk not in [job.pk for job in response.context["cl"].result_list]


def test_list__filters_by_topic_among_the_registered_topics(admin_client):
    mail = make_job("mail.send")
    make_job("report.build")
    response = admin_client.get(reverse(CHANGELIST), {"topic": "mail.send"})
    assert [job.pk for job in response.context["cl"].result_list] == [mail.pk]
    content = response.content.decode()
    # the choices are the topics with a handler (and the one chosen), not those of the rows
    assert "?topic=toolbox.echo" in content
    assert "?topic=mail.send" in content
    assert "?topic=report.build" not in content


def test_list__filters_by_date(admin_client):
    now = timezone.now()
    recent = make_job("a.topic", JobStatus.COMPLETED, finished_at=now)
    make_job("a.topic", JobStatus.COMPLETED, finished_at=now - timedelta(days=30))
    # the "Past 7 days" link of the finished_at filter
    week = admin_client.get(reverse(CHANGELIST), {
        "finished_at__gte": str(now - timedelta(days=7)), "finished_at__lt": str(now + timedelta(days=1))})
    assert [job.pk for job in week.context["cl"].result_list] == [recent.pk]
    # no date hierarchy on ``created`` (no index): its parameters are refused
    assert admin_client.get(reverse(CHANGELIST), {"created__year": now.year}).status_code == 400


def test_list__searches_by_id_and_topic(admin_client):
    mail = make_job("mail.send")
    report = make_job("report.build")
    by_id = admin_client.get(reverse(CHANGELIST), {"q": f" {report.pk} "})
    assert [job.pk for job in by_id.context["cl"].result_list] == [report.pk]
    by_topic = admin_client.get(reverse(CHANGELIST), {"q": "mail"})
    assert [job.pk for job in by_topic.context["cl"].result_list] == [mail.pk]
    too_long = admin_client.get(reverse(CHANGELIST), {"q": "9" * 30})
    assert too_long.status_code == 200 and list(too_long.context["cl"].result_list) == []


def test_list__searches_digits_by_primary_key(admin_client):
    job = make_job("mail.send")
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(reverse(CHANGELIST), {"q": str(job.pk)})
    jobs_queries = [query["sql"] for query in queries if '"_jobs"' in query["sql"]]
    assert jobs_queries and all(f'"_jobs"."id" = {job.pk}' in sql or '"_jobs"."id" = %s' in sql
                                for sql in jobs_queries)
    assert not any("UPPER" in sql for sql in jobs_queries)


def test_list__runs_no_count_over_the_table_and_says_the_count_is_estimated(admin_client, monkeypatch):
    monkeypatch.setattr("plugins_admin.admin.pages.EXACT_UP_TO", 1)  # a table too big to count
    make_job("mail.send", JobStatus.COMPLETED)
    make_job("mail.send", JobStatus.FAILED)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST))
    counts = [query["sql"] for query in queries if "COUNT(" in query["sql"].upper() and '"_jobs"' in query["sql"]]
    assert counts == []
    assert not any("DISTINCT" in query["sql"].upper() for query in queries if '"_jobs"' in query["sql"])
    assert "estimated by the database" in response.content.decode()


def test_list__a_small_table_is_counted_exactly(admin_client):
    for _ in range(3):
        make_job("mail.send", JobStatus.COMPLETED)
    content = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "3 jobs." in content and "estimated" not in content


def test_list__a_filtered_list_counts_up_to_a_bound(admin_client, monkeypatch):
    monkeypatch.setattr("plugins_admin.admin.pages.EXACT_UP_TO", 2)
    for _ in range(2):
        make_job("mail.send", JobStatus.FAILED)
    two = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"}).content.decode()
    assert "2 jobs." in two
    make_job("mail.send", JobStatus.FAILED)
    with CaptureQueriesContext(connection) as queries:
        three = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"}).content.decode()
    # the count reads at most three rows
    assert any(re.search(r"COUNT\(\*\).*LIMIT 3", query["sql"], re.S) for query in queries)
    assert "More than 2 jobs" in three or "About" in three and "estimated by the database" in three


def test_list__pending_jobs_are_found_through_an_index_newest_first(admin_client):
    old = [make_job("mail.send") for _ in range(2)]
    make_job("mail.send", JobStatus.COMPLETED)
    new = make_job("mail.send")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST), {"status__exact": "pending"})
    assert [job.pk for job in response.context["cl"].result_list] == [new.pk, old[1].pk, old[0].pk]
    [ids] = [query["sql"] for query in queries if query["sql"].startswith('SELECT "_jobs"."id" AS "pk"')]
    # the status in the SQL text, and no walk down the primary key past finished jobs
    assert "'pending'" in ids and re.search(r'ORDER BY \("_jobs"\."id" \+ 0\) DESC', ids)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            steps = [row[3] for row in cursor.execute(f"EXPLAIN QUERY PLAN {ids}").fetchall()]
        assert any(re.search(r"SEARCH _jobs USING (COVERING )?INDEX jobs_", step) for step in steps), steps


def test_list__pages_by_id_newest_first(admin_client, monkeypatch):
    monkeypatch.setattr("plugins_admin.admin.jobs.JobAdmin.list_per_page", 2)
    made = [make_job("mail.send") for _ in range(5)]
    ids = sorted((job.pk for job in made), reverse=True)
    first = admin_client.get(reverse(CHANGELIST))
    cl = first.context["cl"]
    assert [job.pk for job in cl.result_list] == ids[:2]
    assert cl.first_page_url is None
    second = admin_client.get(reverse(CHANGELIST) + cl.next_page_url)
    assert [job.pk for job in second.context["cl"].result_list] == ids[2:4]
    assert second.context["cl"].first_page_url is not None
    last = admin_client.get(reverse(CHANGELIST) + second.context["cl"].next_page_url)
    assert [job.pk for job in last.context["cl"].result_list] == ids[4:]
    assert last.context["cl"].next_page_url is None
    # a cursor that names no row of the list: the first page, and a message
    wrong = admin_client.get(reverse(CHANGELIST), {"after": "x1"})
    assert wrong.status_code == 200 and [job.pk for job in wrong.context["cl"].result_list] == ids[:2]
    assert any("first page" in text for text in message_texts(wrong))



@pytest.mark.parametrize("after", ["\u00b2", "1\u00b2", "99999999999999999999999"])
def test_list__a_cursor_of_other_digits_or_too_big_shows_the_first_page(admin_client, after):
    job = make_job("mail.send")
    response = admin_client.get(reverse(CHANGELIST), {"after": after})
    assert response.status_code == 200
    cl = response.context["cl"]
    assert [row.pk for row in cl.result_list] == [job.pk]  # before any id, or the first page
    if not after.isascii():
        assert any("first page" in text for text in message_texts(response))

# -- the detail page ---------------------------------------------------------------------


def test_detail__shows_payload_and_result_as_indented_json(admin_client):
    payload = {"to": ["a@example.com", "b@example.com"], "subject": "<hi>"}
    job = make_job("mail.send", JobStatus.COMPLETED, payload=payload, result={"sent": 2})
    content = admin_client.get(change_url(job)).content.decode()
    assert escape(json.dumps(payload, indent=2, sort_keys=True)) in content
    assert escape(json.dumps({"sent": 2}, indent=2)) in content
    assert "&lt;hi&gt;" in content and "<hi>" not in content


def test_detail__shows_the_last_error_and_the_error_history_with_tracebacks(admin_client):
    errors = [{"exception_class_path": "builtins.ValueError", "traceback": TRACEBACK,
               "at": "2030-01-01T00:00:00+00:00"}]
    job = make_job("mail.send", JobStatus.FAILED, last_error=TRACEBACK, errors=errors)
    content = admin_client.get(change_url(job)).content.decode()
    assert f'<pre class="jobs-pre jobs-traceback">{escape(TRACEBACK)}</pre>' in content
    assert content.count(escape(TRACEBACK)) == 2
    assert "builtins.ValueError" in content


def test_detail__is_read_only(admin_client):
    job = make_job("mail.send", JobStatus.FAILED, priority=1)
    content = admin_client.get(change_url(job)).content.decode()
    assert 'name="_save"' not in content
    assert 'name="priority"' not in content
    response = admin_client.post(change_url(job), {"topic": "other", "status": "pending", "priority": 9,
                                                   "_save": "Save"})
    assert response.status_code == 403
    job.refresh_from_db()
    assert (job.topic, job.status, job.priority) == ("mail.send", JobStatus.FAILED, 1)
    assert admin_client.get(reverse("admin:jobs_job_add")).status_code == 403


def test_detail__djangos_delete_page_is_closed(admin_client):
    job = make_job("mail.send", JobStatus.PROCESSING)
    response = admin_client.post(reverse("admin:jobs_job_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()



def test_detail__an_id_of_other_digits_is_no_error(admin_client):
    response = admin_client.get(reverse("admin:jobs_job_change", args=["\u00b2"]))
    assert response.status_code == 302  # Django's answer to an id that names no row: the list

# -- requeue -----------------------------------------------------------------------------


def test_requeue__puts_failed_jobs_back_in_the_queue(admin_client):
    jobs = [make_job("mail.send", JobStatus.FAILED, attempts=3, run_at=timezone.now() - timedelta(hours=1))
            for _ in range(2)]
    response = run_action(admin_client, "requeue", *jobs)
    assert response.status_code == 302
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.finished_at) == (JobStatus.PENDING, 0, None)
    assert message_texts(response) == ["2 jobs requeued."]


def test_requeue__refuses_a_processing_job_and_says_why(admin_client):
    failed = make_job("mail.send", JobStatus.FAILED)
    running = make_job("mail.send", JobStatus.PROCESSING, attempts=1)
    before = Job.objects.values().get(pk=running.pk)
    response = run_action(admin_client, "requeue", failed, running)
    assert Job.objects.values().get(pk=running.pk) == before
    failed.refresh_from_db()
    assert failed.status == JobStatus.PENDING
    texts = message_texts(response)
    assert texts[0] == "1 job requeued."
    assert texts[1].startswith("1 job was not requeued: ")
    assert f"job {running.pk}" in texts[1] and "being processed by node-7" in texts[1]


def test_requeue__refuses_a_dedupe_conflict(admin_client):
    failed = make_job("mail.send", JobStatus.FAILED, dedupe_key="user-1")
    holder = make_job("mail.send", JobStatus.PENDING, dedupe_key="user-1")
    response = run_action(admin_client, "requeue", failed)
    failed.refresh_from_db()
    assert failed.status == JobStatus.FAILED
    (text,) = message_texts(response)
    assert f"pending job {holder.pk} has its dedupe_key" in text


def test_requeue__from_the_detail_page(admin_client):
    job = make_job("mail.send", JobStatus.FAILED)
    content = admin_client.get(change_url(job)).content.decode()
    assert 'value="requeue"' in content
    response = admin_client.post(change_url(job), {"CHANGE_FORM-action": "requeue",
                                                   "_selected_action": [str(job.pk)]})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


# -- delete ------------------------------------------------------------------------------


def test_delete__deletes_finished_jobs_through_the_store(admin_client):
    completed = make_job("a.topic", JobStatus.COMPLETED)
    failed = make_job("a.topic", JobStatus.FAILED)
    kept = make_job("a.topic", JobStatus.FAILED)
    response = run_action(admin_client, "delete_selected", completed, failed)
    assert list(Job.objects.values_list("pk", flat=True)) == [kept.pk]
    assert message_texts(response) == ["2 jobs deleted."]


def test_delete__refuses_a_processing_job(admin_client):
    done = make_job("a.topic", JobStatus.COMPLETED)
    running = make_job("a.topic", JobStatus.PROCESSING)
    response = run_action(admin_client, "delete_selected", done, running)
    assert list(Job.objects.values_list("pk", flat=True)) == [running.pk]
    texts = message_texts(response)
    assert texts[0] == "1 job deleted."
    assert texts[1].startswith("1 job was not deleted: ") and f"job {running.pk}" in texts[1]


def test_delete__replaces_djangos_delete_selected(admin_client):
    response = admin_client.get(reverse(CHANGELIST))
    choices = dict(response.context["action_form"].fields["action"].choices)
    assert choices["delete_selected"] == "Delete selected jobs"
    assert set(choices) == {"", "requeue", "delete_selected"}


def test_delete__from_the_detail_page_returns_to_the_list(admin_client):
    job = make_job("a.topic", JobStatus.FAILED)
    response = admin_client.post(change_url(job), {"CHANGE_FORM-action": "delete_selected",
                                                   "_selected_action": [str(job.pk)]})
    assert response.status_code == 302
    assert response["Location"] == reverse(CHANGELIST)
    assert not Job.objects.filter(pk=job.pk).exists()


# -- the dashboard -----------------------------------------------------------------------


def test_dashboard__counts_by_status_and_topic(admin_client):
    for _ in range(2):
        make_job("mail.send", JobStatus.FAILED)
    make_job("mail.send", JobStatus.COMPLETED)
    make_job("report.build", JobStatus.PENDING)
    response = admin_client.get(reverse(DASHBOARD))
    assert response.status_code == 200
    content = response.content.decode()
    assert '<td class="jobs-count" data-status="failed">2</td>' in content
    assert '<td class="jobs-count" data-status="completed">1</td>' in content
    assert '<td class="jobs-count" data-status="processing">0</td>' in content
    mail_row = re.search(r'<tr data-topic="mail.send">(.*?)</tr>', content, re.S).group(1)
    assert re.findall(r'<td class="jobs-count">(\d+)</td>', mail_row) == ["0", "0", "1", "2", "3"]
    assert '<tr data-topic="report.build">' in content


def test_dashboard__marks_estimated_finished_counts(admin_client, monkeypatch):
    monkeypatch.setattr("jobs.store.EXACT_FINISHED", 2)
    monkeypatch.setattr("jobs.store.FINISHED_SAMPLE", 2)
    for _ in range(3):
        make_job("mail.send", JobStatus.COMPLETED, finished_at=timezone.now())
    make_job("report.build", JobStatus.PENDING)
    content = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert re.search(r'<td class="jobs-count" data-status="completed">&asymp; \d+</td>', content)
    assert '<td class="jobs-count" data-status="pending">1</td>' in content  # counted
    assert "completed and failed: estimates" in content


def test_dashboard__shows_the_age_of_the_oldest_due_job(admin_client):
    now = timezone.now()
    make_job("a.topic", run_at=now - timedelta(minutes=10))
    make_job("a.topic", run_at=now - timedelta(minutes=1))
    make_job("a.topic", run_at=now + timedelta(hours=1))  # not due: not counted
    make_job("a.topic", JobStatus.FAILED, run_at=now - timedelta(hours=2))  # not pending
    content = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert '<span class="jobs-figure" id="jobs-due-count">2</span>' in content
    assert re.search(r'id="jobs-oldest-due-age"[^>]*>10 min \d+ s</span>', content)


def test_dashboard__says_when_no_job_is_waiting(admin_client):
    make_job("a.topic", run_at=timezone.now() + timedelta(hours=1))
    content = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert '<span class="jobs-figure" id="jobs-due-count">0</span>' in content
    assert "jobs-oldest-due-age" not in content
    assert "none is waiting" in content


def test_dashboard__chart_has_a_bar_per_minute_with_finished_jobs(admin_client):
    now = timezone.now()
    five_ago, two_ago = now - timedelta(minutes=5), now - timedelta(minutes=2)
    for _ in range(3):
        make_job("a.topic", JobStatus.COMPLETED, finished_at=five_ago)
    make_job("a.topic", JobStatus.COMPLETED, finished_at=two_ago)
    for _ in range(2):
        make_job("a.topic", JobStatus.FAILED, finished_at=two_ago)
    make_job("a.topic", JobStatus.COMPLETED, finished_at=now - timedelta(hours=2))  # out of the hour
    content = admin_client.get(reverse(DASHBOARD)).content.decode()
    svg = re.search(r'<svg class="jobs-chart".*?</svg>', content, re.S).group(0)
    label = lambda moment: timezone.localtime(moment).strftime("%H:%M")  # noqa: E731
    assert f"<title>{label(five_ago)}: 3 completed, 0 failed</title>" in svg
    assert f"<title>{label(two_ago)}: 1 completed, 2 failed</title>" in svg
    assert svg.count("<title>") == 60  # one per minute (the chart's own has an id)
    assert re.findall(r'class="jobs-bar-(\w+)" data-count="(\d+)"', svg) == [
        ("completed", "3"), ("completed", "1"), ("failed", "2")]
    heights = {count: float(height) for count, height in
               re.findall(r'data-count="(\d+)" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', svg)}
    assert heights["3"] == pytest.approx(3 * heights["1"], rel=0.01)
    assert heights["2"] == pytest.approx(2 * heights["1"], rel=0.01)
    assert "4 completed" in content and "2 failed" in content


def test_dashboard__links_the_job_list_and_the_schedules(admin_client):
    content = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert reverse("admin:django_q_schedule_changelist") in content
    assert reverse(CHANGELIST) in content
    app_index = admin_client.get(reverse("admin:app_list", args=["jobs"])).content.decode()
    assert reverse(DASHBOARD) in app_index


def test_dashboard__is_refused_to_staff_without_job_permissions(django_user_model):
    user = django_user_model.objects.create_user(username="staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(reverse(DASHBOARD)).status_code == 403


# -- who may do what ---------------------------------------------------------------------


@pytest.mark.parametrize("page", ["changelist", "change", "dashboard", "delete"])
def test_non_staff__is_sent_to_the_login_page(user_client, client, page):
    job = make_job("a.topic", JobStatus.FAILED)
    url = reverse(f"admin:jobs_job_{page}", args=[job.pk] if page in ("change", "delete") else [])
    for someone in (user_client, client):  # logged in without staff rights, and anonymous
        response = someone.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize("action", ["requeue", "delete_selected"])
def test_non_staff__cannot_run_actions(user_client, action):
    failed = make_job("a.topic", JobStatus.FAILED)
    before = Job.objects.values().get(pk=failed.pk)
    response = run_action(user_client, action, failed)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert Job.objects.values().get(pk=failed.pk) == before
    response = user_client.post(change_url(failed), {"CHANGE_FORM-action": action,
                                                     "_selected_action": [str(failed.pk)]})
    assert response["Location"].startswith(reverse("admin:login"))
    assert Job.objects.values().get(pk=failed.pk) == before


@pytest.mark.parametrize("action", ["requeue", "delete_selected"])
def test_staff_without_the_permission__cannot_run_actions(viewer_client, action):
    failed = make_job("a.topic", JobStatus.FAILED)
    before = Job.objects.values().get(pk=failed.pk)
    assert viewer_client.get(reverse(CHANGELIST)).status_code == 200
    response = run_action(viewer_client, action, failed)
    assert Job.objects.values().get(pk=failed.pk) == before
    assert response.status_code == 200  # the list again: no action is offered to this user
    assert message_texts(response) == []
    assert f'value="{action}"' not in response.content.decode()


@pytest.mark.parametrize("action", ["requeue", "delete_selected"])
def test_get__of_an_action_changes_nothing(admin_client, action):
    failed = make_job("a.topic", JobStatus.FAILED)
    before = Job.objects.values().get(pk=failed.pk)
    admin_client.get(reverse(CHANGELIST), {"action": action, "_selected_action": failed.pk,
                                           "index": 0})
    admin_client.get(change_url(failed), {"CHANGE_FORM-action": action, "_selected_action": failed.pk})
    assert Job.objects.values().get(pk=failed.pk) == before


def test_actions__need_the_csrf_token(admin_user):
    failed = make_job("a.topic", JobStatus.FAILED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = run_action(client, "delete_selected", failed)
    assert response.status_code == 403
    assert Job.objects.filter(pk=failed.pk, status=JobStatus.FAILED).exists()


# -- jobs turned off (JOBS["DISABLED"]) ------------------------------------------------------


def test_disabled__the_pages_say_so_with_a_404_and_leave_the_index(admin_client, settings):
    job = make_job("mail.send", JobStatus.FAILED)
    settings.JOBS = {**getattr(settings, "JOBS", {}), "DISABLED": True}

    for url in (reverse(CHANGELIST), change_url(job), reverse(DASHBOARD)):
        response = admin_client.get(url)
        assert response.status_code == 404, url
    assert "JOBS_DISABLED" in str(response.context["exception"])
    assert reverse(CHANGELIST) not in admin_client.get(reverse("admin:index")).content.decode()


def test_disabled__actions_change_nothing(admin_client, settings):
    job = make_job("mail.send", JobStatus.FAILED)
    settings.JOBS = {**getattr(settings, "JOBS", {}), "DISABLED": True}

    response = admin_client.post(reverse(CHANGELIST), {"action": "requeue", "_selected_action": [job.pk]})

    assert response.status_code == 404
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED
