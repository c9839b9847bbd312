"""The audit list in the admin: who sees it, that nobody edits it, its filters and trace id search."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobs.models import Job
from tachycore import audit
from tachycore.models import Access, AuditEvent

pytestmark = pytest.mark.django_db

LIST = "admin:tachycore_auditevent_changelist"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
OTHER_TRACE = "0af7651916cd43dd8448eb211c80319c"


def event(**fields) -> AuditEvent:
    defaults = {"at": timezone.now(), "plugin": "notes", "capability": "storage:sql", "access": Access.READ,
                "decision": "denied", "action": "sql", "target": "own tables", "trace_id": TRACE}
    return AuditEvent.objects.create(**{**defaults, **fields})


@pytest.fixture
def events():
    AuditEvent.objects.all().delete()  # what the kernel recorded while the test database was made
    return {
        "denied": event(),
        "would_deny": event(decision="would_deny", plugin="audit", capability="kv", action="kv.set",
                            trace_id=OTHER_TRACE),
        "grant": event(decision="allowed", action="grant", capability="jobs:enqueue", trace_id=""),
    }


def shown(client, query: str = "") -> set[int]:
    response = client.get(reverse(LIST) + query)
    assert response.status_code == 200, response.status_code
    return {int(pk) for pk in re.findall(r'/admin/tachycore/auditevent/(\d+)/change/', response.content.decode())}


@pytest.fixture
def viewer(client):
    """Staff with the view permission of audit events, and no other."""
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditevent", content_type__app_label="tachycore"))
    client.force_login(user)
    return client


# -- who sees it ---------------------------------------------------------------------------------


def test_list__superusers_see_every_row(admin_client, events):
    assert shown(admin_client) == {row.pk for row in events.values()}


def test_list__staff_with_the_view_permission_see_it(viewer, events):
    assert shown(viewer) == {row.pk for row in events.values()}


def test_list__staff_without_the_permission_are_refused(client, events):
    client.force_login(User.objects.create_user("staff", password="pw", is_staff=True))

    assert client.get(reverse(LIST)).status_code == 403


def test_list__people_not_staff_are_sent_to_the_login_page(client, events):
    client.force_login(User.objects.create_user("visitor", password="pw"))

    response = client.get(reverse(LIST))

    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# -- nobody changes a row ------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin_client", "viewer"])
def test_rows__cannot_be_added_changed_or_deleted(request, who, events):
    client = request.getfixturevalue(who)
    row = events["denied"]

    assert client.get(reverse("admin:tachycore_auditevent_add")).status_code == 403
    assert client.get(reverse("admin:tachycore_auditevent_delete", args=[row.pk])).status_code == 403
    page = client.get(reverse("admin:tachycore_auditevent_change", args=[row.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content  # a view page
    assert client.post(reverse("admin:tachycore_auditevent_change", args=[row.pk]),
                       {"decision": "allowed"}).status_code == 403
    assert client.post(reverse(LIST), {"action": "delete_selected", "_selected_action": [row.pk]}
                       ).status_code in (200, 302)
    assert AuditEvent.objects.get(pk=row.pk).decision == "denied"


# -- filters and search --------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("?decision__exact=would_deny", {"would_deny"}),
    ("?plugin=audit", {"would_deny"}),
    ("?capability=jobs:enqueue", {"grant"}),
    ("?action=sql", {"denied"}),
    (f"?q={TRACE}", {"denied"}),
    (f"?q={TRACE.upper()}", {"denied"}),
    ("?q=notes", set()),  # only a trace id is searched
])
def test_list__filters_and_trace_id_search(viewer, events, query, expected):
    assert shown(viewer, query) == {events[name].pk for name in expected}


def test_list__filters_offer_the_values_the_trail_holds(viewer, events):
    page = viewer.get(reverse(LIST)).content.decode()

    for link in ("?plugin=audit", "?capability=jobs%3Aenqueue", "?action=kv.set", "?decision__exact=would_deny"):
        assert link in page


@pytest.mark.parametrize("query", ["?detail__regex=(a+)+$", "?trace_id__icontains=4b", "?user_id__gt=0"])
def test_list__other_lookups_are_a_400(viewer, events, query):
    assert viewer.get(reverse(LIST) + query).status_code == 400


def test_list__shows_the_processes_drop_count(viewer, events, monkeypatch):
    monkeypatch.setattr(audit.trail, "dropped", 1234)

    page = viewer.get(reverse(LIST)).content.decode()

    assert re.search(r'<strong class="audit-dropped">1234</strong>\s*allowed checks dropped', page)


# -- pages and counts ----------------------------------------------------------------------------


def test_list__runs_no_count_over_the_trail_and_says_the_count_is_estimated(viewer, events, monkeypatch):
    monkeypatch.setattr("plugins_admin.admin.pages.EXACT_UP_TO", 2)  # a trail too big to count
    with CaptureQueriesContext(connection) as queries:
        page = viewer.get(reverse(LIST)).content.decode()

    assert not [query["sql"] for query in queries
                if "COUNT(" in query["sql"].upper() and '"tachycore_audit"' in query["sql"]]
    assert "estimated by the database" in page


def test_list__pages_by_time_newest_first(viewer, events, monkeypatch):
    monkeypatch.setattr("plugins_admin.admin.audit.AuditEventAdmin.list_per_page", 2)
    at = timezone.now()
    # two rows of the same instant, on either side of a page's end: ordered by id between them
    tied = [event(at=at, trace_id=""), event(at=at, trace_id="")]
    AuditEvent.objects.filter(pk=events["grant"].pk).update(at=at - timedelta(seconds=1))
    AuditEvent.objects.filter(pk__in=[events["denied"].pk, events["would_deny"].pk]).update(at=at - timedelta(days=1))
    first = viewer.get(reverse(LIST), {"decision__exact": "allowed"}).context["cl"]
    assert first.result_list == [events["grant"]] and first.next_page_url is None
    first = viewer.get(reverse(LIST)).context["cl"]
    assert [row.pk for row in first.result_list] == [tied[1].pk, tied[0].pk]
    second = viewer.get(reverse(LIST) + first.next_page_url).context["cl"]
    assert [row.pk for row in second.result_list] == [events["grant"].pk, events["would_deny"].pk]
    third = viewer.get(reverse(LIST) + second.next_page_url).context["cl"]
    assert [row.pk for row in third.result_list] == [events["denied"].pk] and third.next_page_url is None



@pytest.mark.parametrize("after", ["9999-12-31T23:59:59-23:59,1", "0001-01-01T00:00:00+23:59,1"])
def test_list__a_cursor_of_a_time_with_no_utc_time_shows_the_first_page(viewer, events, after):
    # each a valid datetime, whose offset moves it past year 9999 or before year 1 in UTC
    assert shown(viewer, "?after=" + after.replace("+", "%2B")) == {row.pk for row in events.values()}


def test_list__a_cursor_with_a_large_offset_is_compared_in_utc(viewer, events):
    later = timezone.now() + timedelta(days=2)
    at = (later.astimezone(timezone.get_fixed_timezone(20 * 60))).isoformat()  # +20:00
    assert shown(viewer, "?after=" + at.replace("+", "%2B") + ",1") == {row.pk for row in events.values()}

# -- from a job to its trace ---------------------------------------------------------------------


def test_job_page__links_to_the_audit_rows_of_its_trace(admin_client, events):
    job = Job.objects.create(topic="notes.word_count", payload={}, run_at=timezone.now(), created=timezone.now(),
                             updated=timezone.now(), trace_context={
        "traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})

    page = admin_client.get(reverse("admin:jobs_job_change", args=[job.pk])).content.decode()
    link = re.search(r'<a href="([^"]+)" id="job-audit-link"', page)

    assert link and link[1] == f"{reverse(LIST)}?q={TRACE}"
    assert TRACE in page
    assert shown(admin_client, f"?q={TRACE}") == {events["denied"].pk}


def test_job_page__has_no_link_for_who_may_not_see_the_trail(client, events):
    user = User.objects.create_user("jobs-only", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_job"))
    client.force_login(user)
    job = Job.objects.create(topic="t", payload={}, run_at=timezone.now(), created=timezone.now(),
                             updated=timezone.now(), trace_context={"traceparent": f"00-{TRACE}-00f067aa0ba902b7-01"})

    page = client.get(reverse("admin:jobs_job_change", args=[job.pk]))

    assert page.status_code == 200 and b"job-audit-link" not in page.content
