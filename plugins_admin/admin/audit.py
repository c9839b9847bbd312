"""Admin pages: the audit trail (``tachycore.audit``).

A read-only list: the rows are written by the kernel, and nobody adds, changes or
deletes one here (retention deletes them, ``TACHYCORE["AUDIT_RETENTION"]``). Superusers
and staff with ``tachycore.view_auditevent`` see it. Filters by plugin, decision,
capability and action; the search box takes a trace id (32 hex digits), looked up
exactly through its index; the header shows this process's audit counts, the dropped
allowed checks among them. A job's page links here with its trace id.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from tachycore import audit
from tachycore.models import AuditEvent

from .lookups import FilterLookupsOnly
from .pages import KeysetPages

#: what the search box takes: a W3C trace id
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


#: the newest rows whose values the filters offer: a DISTINCT over a whole trail of millions
#: of rows on every page would be a full scan (an older value still filters through the URL)
RECENT_ROWS = 10000
#: the columns whose recent values the filters offer
FILTERED_COLUMNS = ("plugin", "capability", "action")


def recent_values(request: HttpRequest) -> dict[str, set[str]]:
    """The values each of ``FILTERED_COLUMNS`` holds in the newest ``RECENT_ROWS`` rows, read
    once per request in one query through the ``at`` index (``id IN (newest ids)`` would join
    the whole table on PostgreSQL)."""
    cached = getattr(request, "_audit_recent_values", None)
    if cached is None:
        rows = AuditEvent.objects.order_by("-at").values_list(*FILTERED_COLUMNS)[:RECENT_ROWS]
        cached = {column: set() for column in FILTERED_COLUMNS}
        for row in rows:
            for column, value in zip(FILTERED_COLUMNS, row, strict=True):
                cached[column].add(value)
        request._audit_recent_values = cached  # type: ignore[attr-defined]
    return cached


class DistinctValueFilter(admin.SimpleListFilter):
    """The values a column holds in the newest ``RECENT_ROWS`` rows (``recent_values``)."""

    field = ""

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(value, value or "-") for value in sorted(recent_values(request)[self.field])]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() is not None:
            return queryset.filter(**{self.field: self.value()})
        return queryset


class PluginFilter(DistinctValueFilter):
    title = _("plugin")
    parameter_name = field = "plugin"


class CapabilityFilter(DistinctValueFilter):
    title = _("capability")
    parameter_name = field = "capability"


class ActionFilter(DistinctValueFilter):
    title = _("action")
    parameter_name = field = "action"


@admin.register(AuditEvent)
class AuditEventAdmin(FilterLookupsOnly, admin.ModelAdmin):
    """The audit trail: read-only, filtered, searched by trace id."""

    list_display = ["at", "plugin", "decision", "action", "capability", "access", "target", "user_id",
                    "trace_id"]
    list_filter = [PluginFilter, "decision", CapabilityFilter, ActionFilter]
    search_fields = ["trace_id"]  # searched by get_search_results: an exact, indexed lookup
    search_help_text = _("A trace id: 32 hexadecimal digits, as in a traceparent header.")
    fields = readonly_fields = ("at", "node", "plugin", "capability", "access", "decision", "action", "target",
                                "detail", "trace_id", "user_id")
    show_full_result_count = False  # a count(*) of the whole table on every page: not on a big trail
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice: as many scans
    #: pages by time, newest first (``pages.KeysetPages``), read through the ``at`` index (or the
    #: plugin's and the decision's, filtered); no column sorts, no page numbers
    keyset = ("at", "id")
    sortable_by = ()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[KeysetPages]:
        return KeysetPages

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEvent | None = None) -> bool:
        return False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet,
                           search_term: str) -> tuple[QuerySet, bool]:
        """A trace id matches its rows exactly (the ``trace_id`` index); any other text matches none."""
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if not TRACE_ID.match(term):
            return queryset.none(), False
        return queryset.filter(trace_id=term), False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        extra_context = {"audit_stats": audit.stats(), **(extra_context or {})}
        return super().changelist_view(request, extra_context)


def trace_rows_url(request: HttpRequest, site: admin.AdminSite, trace_id: str) -> str | None:
    """The audit rows of ``trace_id``, when the audit list is registered and ``request``'s
    user may see it."""
    if not trace_id or not site.is_registered(AuditEvent):
        return None
    if not site.get_model_admin(AuditEvent).has_view_permission(request):
        return None
    return f"{reverse(f'{site.name}:tachycore_auditevent_changelist')}?{urlencode({'q': trace_id})}"


def trace_id_of(trace_context: Any) -> str:
    """The trace id of a stored trace context (``{"traceparent": "00-<trace id>-<span>-01"}``)."""
    header = trace_context.get("traceparent", "") if isinstance(trace_context, dict) else ""
    parts = header.split("-") if isinstance(header, str) else []
    return parts[1] if len(parts) == 4 and TRACE_ID.match(parts[1]) else ""
