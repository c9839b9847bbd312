"""Admin pages: jobs.

The job list and detail pages are read-only: a worker writes these rows. A person
changes them only through the actions ``requeue`` and ``delete``, which call the job
store (so a job being processed is refused, as it is everywhere else), and watches
the queue on the dashboard (``admin:jobs_job_dashboard``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import build_q_object_from_lookup_parameters
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

import jobs
from jobs.errors import DedupeConflict, JobNotFound, JobRunning
from jobs.handlers import handlers
from jobs.models import Job, JobStatus, StatusLiteral
from jobs.store import JobStore

from .. import charts
from .audit import trace_id_of, trace_rows_url
from .lookups import FilterLookupsOnly
from .pages import KeysetPages
from .switches import SwitchedAdmin

#: refusals named in one message; more are counted
MAX_REASONS = 10
#: the largest job id (a 64-bit integer): a longer number in the search box finds no job
MAX_ID = 2**63 - 1
BOTH_PLACES = [admin.ActionLocation.CHANGE_LIST, admin.ActionLocation.CHANGE_FORM]


class TopicFilter(admin.SimpleListFilter):
    """The topics this process has handlers for (``jobs.handlers``), and the one chosen.

    Not the topics of the table: a ``DISTINCT topic`` reads every row on every page. Jobs of
    another topic (a ``django.tasks`` task's, one of ``ALLOWED_TOPICS``, a removed plugin's)
    are listed through the URL (``?topic=``), as the dashboard links to them.
    """

    title = _("topic")
    parameter_name = "topic"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        topics = set(handlers.topics())
        chosen = self.value()
        if chosen:
            topics.add(chosen)
        return [(topic, topic) for topic in sorted(topics)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(topic=self.value())
        return queryset


class StatusFilter(admin.ChoicesFieldListFilter):
    """Django's filter of the status choices (``status__exact``, ``status__isnull``), the
    status written into the SQL (``StatusLiteral``): SQLite's planner then can use the
    queue's partial indexes, as PostgreSQL's does."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        chosen = self.used_parameters.get(self.lookup_kwarg)
        others: dict[str, Any] = {name: value for name, value in self.used_parameters.items()
                                  if name != self.lookup_kwarg}
        if others:  # status__isnull, as Django's filter reads it
            try:
                queryset = queryset.filter(build_q_object_from_lookup_parameters(others))
            except (ValueError, ValidationError) as e:
                raise IncorrectLookupParameters(e) from e
        if chosen is None:
            return queryset
        status = chosen[-1] if isinstance(chosen, list) else chosen
        if status not in JobStatus.values:
            return queryset.none()
        return queryset.filter(status=StatusLiteral(status))


class JobPages(KeysetPages):
    """The job list's pages: by id, newest first.

    A list of pending or processing jobs sorts the ids of its jobs, found through their
    partial index (``jobs_pending_topic``, ``jobs_processing_lease``; the queue keeps them
    few), instead of walking the primary key down past the finished jobs: a few thousand
    pending jobs of a disabled plugin, enqueued a million jobs ago, would otherwise cost a
    read of the whole table.
    """

    #: the states whose jobs the queue keeps few, each with a partial index
    FEW = (JobStatus.PENDING, JobStatus.PROCESSING)

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.status = request.GET.get("status__exact")
        super().__init__(request, *args, **kwargs)

    def ids_ordering(self) -> list[Any]:
        if self.status in self.FEW:
            # ``id + 0``: the same order, which the primary key's index cannot give
            return [(F("id") + 0).desc()]
        return super().ids_ordering()


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON in a <pre> (escaped)."""
    return format_html('<pre class="jobs-pre">{}</pre>',
                       json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str))


def status_badge(status: str) -> str:
    label = JobStatus(status).label if status in JobStatus.values else status
    return format_html('<span class="jobs-badge jobs-badge-{}">{}</span>', status, label)


def format_age(seconds: float) -> str:
    """A duration for people: ``"42 s"``, ``"5 min 3 s"``, ``"2 h 5 min"``, ``"3 d 4 h"``."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@admin.register(Job)
class JobAdmin(FilterLookupsOnly, SwitchedAdmin[JobStore]):
    """Jobs: read-only rows, actions through the job store, and a dashboard."""

    off_message = 'jobs is disabled (JOBS["DISABLED"] or the environment variable JOBS_DISABLED)'

    list_display = ["id", "topic", "status_display", "priority", "attempts_display", "run_at",
                    "finished_at"]
    list_filter = [("status", StatusFilter), TopicFilter, ("finished_at", admin.DateFieldListFilter)]
    # no date hierarchy: ``created`` has no index, and its links need its MIN, MAX and months
    search_fields = ["topic"]  # and a job id: get_search_results
    search_help_text = _("A job id (digits), or part of a topic.")
    #: pages by id, newest first (``pages.KeysetPages``); no column sorts, no page numbers
    keyset = ("id",)
    sortable_by = ()
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: as many scans
    actions = ["requeue", "delete_selected"]
    fieldsets = [
        (None, {"fields": ["id", "topic", "status_display", "priority", "queue_name",
                           "task_backend", "dedupe_key"]}),
        (_("Trace"), {"fields": ["trace_display"]}),
        (_("Timing"), {"fields": ["created", "run_at", "started_at", "attempted_at",
                                  "finished_at", "updated"]}),
        (_("Attempts"), {"fields": ["attempts_display", "retries", "locked_by", "locked_until",
                                    "workers"]}),
        (_("Payload and result"), {"fields": ["payload_display", "result_display"]}),
        (_("Errors"), {"fields": ["last_error_display", "errors_display"]}),
    ]
    readonly_fields = [str(name) for _title, options in fieldsets for name in options["fields"]]

    def get_store(self) -> JobStore | None:
        return jobs.get_job_store()

    # -- read-only rows ------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # no field of a job is edited by hand: state changes are the actions below
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Django's delete page would delete a job being processed: the delete action
        # (offered on the detail page too) goes through the store instead
        return obj is None and super().has_delete_permission(request)

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    # -- the list ------------------------------------------------------------------------

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[JobPages]:
        return JobPages

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        """Digits are a job id, looked up by primary key; other text is part of a topic."""
        term = search_term.strip()
        if term.isascii() and term.isdigit():
            return (queryset.filter(pk=int(term)) if int(term) <= MAX_ID else queryset.none()), False
        return super().get_search_results(request, queryset, search_term)

    # -- columns and fields --------------------------------------------------------------

    @admin.display(description=_("status"), ordering="status")
    def status_display(self, job: Job) -> str:
        return status_badge(job.status)

    @admin.display(description=_("attempts"), ordering="attempts")
    def attempts_display(self, job: Job) -> str:
        # the first run and then up to max_retries retries: "1 / 1" for a job without retries
        return f"{job.attempts} / {job.max_retries + 1}"

    @admin.display(description=_("trace id"))
    def trace_display(self, job: Job) -> str:
        """The trace the job runs in (its enqueuer's): its audit rows share it."""
        return trace_id_of(job.trace_context) or "-"

    @admin.display(description=_("payload"))
    def payload_display(self, job: Job) -> str:
        return pretty_json(job.payload)

    @admin.display(description=_("result"))
    def result_display(self, job: Job) -> str:
        return pretty_json(job.result)

    @admin.display(description=_("last error"))
    def last_error_display(self, job: Job) -> str:
        if not job.last_error:
            return "-"
        return format_html('<pre class="jobs-pre jobs-traceback">{}</pre>', job.last_error)

    @admin.display(description=_("error history"))
    def errors_display(self, job: Job) -> str:
        entries = [entry if isinstance(entry, dict) else {"traceback": str(entry)}
                   for entry in job.errors or []]
        if not entries:
            return "-"
        return format_html('<ol class="jobs-errors">{}</ol>', format_html_join(
            "", '<li><strong>{}</strong> {}<pre class="jobs-pre jobs-traceback">{}</pre></li>',
            ((entry.get("exception_class_path", ""), entry.get("at", ""), entry.get("traceback", ""))
             for entry in entries)))

    # -- actions -------------------------------------------------------------------------

    @admin.action(description=_("Requeue selected jobs"), permissions=["requeue"],
                  location=BOTH_PLACES)
    def requeue(self, request: HttpRequest, queryset: QuerySet) -> None:
        """Put the jobs back in the queue, due now; a job being processed, or one whose
        dedupe key another pending job holds, is refused and left as it is."""
        done, refused = self._for_each(queryset, self.store().requeue)
        if done:
            messages.success(request, ngettext("%(count)d job requeued.", "%(count)d jobs requeued.",
                                               done) % {"count": done})
        self._report_refused(request, refused, str(_("requeued")))

    @admin.action(description=_("Delete selected jobs"), permissions=["delete"],
                  location=BOTH_PLACES)
    def delete_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        """Delete the jobs through the store: a job being processed is refused; nothing
        else is deleted with them (no other model points at a job)."""
        done, refused = self._for_each(queryset, self.store().delete)
        if done:
            messages.success(request, ngettext("%(count)d job deleted.", "%(count)d jobs deleted.",
                                               done) % {"count": done})
        self._report_refused(request, refused, str(_("deleted")))
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        match = request.resolver_match
        if done and match is not None and match.url_name == f"{prefix}_change":
            # the detail page of a deleted job is gone: back to the list
            return HttpResponseRedirect(reverse(f"{self.admin_site.name}:{prefix}_changelist"))
        return None

    @staticmethod
    def _for_each(queryset: QuerySet, operation: Callable[[int], Any]) -> tuple[int, list[str]]:
        """Run ``operation`` on each job id; return how many succeeded and why the others
        were refused. Each call stands alone, so one refusal spoils nothing else."""
        done, refused = 0, []
        for job_id in queryset.order_by("pk").values_list("pk", flat=True):
            try:
                operation(job_id)
            except (JobRunning, DedupeConflict, JobNotFound) as e:
                refused.append(str(e))
            else:
                done += 1
        return done, refused

    @staticmethod
    def _report_refused(request: HttpRequest, refused: list[str], verb: str) -> None:
        if not refused:
            return
        reasons = "; ".join(refused[:MAX_REASONS])
        if len(refused) > MAX_REASONS:
            reasons += f"; and {len(refused) - MAX_REASONS} more"
        messages.warning(request, ngettext(
            "%(count)d job was not %(verb)s: %(reasons)s.",
            "%(count)d jobs were not %(verb)s: %(reasons)s.", len(refused),
        ) % {"count": len(refused), "verb": verb, "reasons": reasons})

    # -- dashboard -----------------------------------------------------------------------

    def get_urls(self) -> list:
        # before the model's own URLs: "<path:object_id>/" would take "dashboard/"
        return [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view),
                 name=f"{self.opts.app_label}_{self.opts.model_name}_dashboard"),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """Counts by status and topic, the oldest due job's age, finished jobs per minute."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        stats = self.store().stats()
        chart = charts.bar_chart(charts.finished_per_minute(timezone.now()))
        statuses = list(JobStatus)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Job dashboard"),
            "opts": self.opts,
            "stats": stats,
            "status_rows": [(status, status_badge(status), stats.by_status.get(status, 0))
                            for status in statuses],
            "statuses": statuses,
            "topic_rows": [(topic, [counts.get(status, 0) for status in statuses], sum(counts.values()))
                           for topic, counts in stats.by_topic.items()],
            "total": sum(stats.by_status.values()),
            "oldest_due_age": format_age(stats.oldest_due_age) if stats.due else None,
            "chart": chart,
            "schedules_url": schedules_url(request, self.admin_site),
        }
        return TemplateResponse(request, "plugins_admin/jobs/dashboard.html", context)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {"schedules_url": schedules_url(request, self.admin_site), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict | None = None) -> HttpResponse:
        """The job's page, with a link to the audit rows of its trace (for who may see them)."""
        rows = Job.objects.filter(pk=object_id) if object_id.isascii() and object_id.isdigit() else Job.objects.none()
        trace_context = rows.values_list("trace_context", flat=True).first()
        audit_url = trace_rows_url(request, self.admin_site, trace_id_of(trace_context))
        return super().change_view(request, object_id, form_url, {"audit_url": audit_url, **(extra_context or {})})


def schedules_url(request: HttpRequest, site: admin.AdminSite) -> str | None:
    """The django-q2 schedules list (cron entries), when django_q is installed and the
    user may see it (superusers only: ``schedules.py``)."""
    if not apps.is_installed("django_q"):
        return None
    schedule = apps.get_model("django_q", "Schedule")
    if not site.is_registered(schedule) or not site.get_model_admin(schedule).has_view_permission(request):
        return None
    return reverse(f"{site.name}:django_q_schedule_changelist")
