"""Admin pages: the supervisor's nodes and maintenance mode.

The node list is the supervisor's view (``tachycore.supervisor.live_rows``): each live
process of the site, a hundred a page, with its status, heartbeat age, the plugin versions
its code has and its last errors; the stopped and stale ones are counted, and listed with
the others on ``?gone=1`` (stale ones shown as such) until the prune schedule deletes them
(``NODE_RETENTION``). Plugins that live processes run at different versions (a rolling
restart under way) are named above the list. The rows are written by the processes
themselves and are read-only here.
The same page turns maintenance mode on or off (``tachycore.maintenance``) and says
which live processes have picked the current mode up, as ``manage.py maintenance
status`` does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.http import urlencode

from tachycore.maintenance import MaintenanceState, maintenance
from tachycore.models import Node, NodeStatus
from tachycore.supervisor import NodeInfo, live_rows, node_info
from tachycore.versions import mixed_plugins

from .lookups import FilterLookupsOnly

#: the permission that turns maintenance mode on or off (besides staff)
MAINTENANCE_PERMISSION = "tachycore.change_sitestate"
#: processes that follow maintenance mode; a command runs too briefly to be waited for
FOLLOWING_KINDS_EXCLUDE = ("command",)
#: the query parameter that lists stopped and stale processes too
SHOW_GONE = "gone"
#: the query parameter of the page number
PAGE = "p"
#: processes on a page
NODES_PER_PAGE = 100


@dataclasses.dataclass(frozen=True)
class Uptake:
    """Which live processes run in the current maintenance mode, and which do not yet."""

    enabled: bool
    live: list[NodeInfo]
    waiting: list[NodeInfo]

    @property
    def picked_up(self) -> int:
        return len(self.live) - len(self.waiting)

    @property
    def summary(self) -> str:
        noun = "process" if len(self.live) == 1 else "processes"
        if self.enabled:
            return f"{self.picked_up} of {len(self.live)} live {noun} picked it up."
        if self.waiting:
            return f"{self.picked_up} of {len(self.live)} live {noun} left maintenance mode."
        return f"{len(self.live)} live {noun}, none in maintenance mode."


def uptake(state: MaintenanceState, nodes: list[NodeInfo]) -> Uptake:
    """How far ``state`` has spread: live (fresh, not stopped) nodes other than commands."""
    live = [node for node in nodes
            if not node.stale and node.status != NodeStatus.STOPPED and node.kind not in FOLLOWING_KINDS_EXCLUDE]
    return Uptake(enabled=state.enabled, live=live, waiting=[node for node in live if node.maintenance != state.enabled])


def is_gone(node: NodeInfo) -> bool:
    """A process that said goodbye (stopped) or stopped answering (stale)."""
    return node.stale or node.status == NodeStatus.STOPPED


_STATUS_CSS: dict[str, str] = {NodeStatus.RUNNING: "on", NodeStatus.ERROR: "error",
                               NodeStatus.MAINTAINING: "new", NodeStatus.STOPPED: "off"}


def status_badges(node: NodeInfo) -> list[tuple[str, str]]:
    """(css class, text) badges for a node's state."""
    if node.stale:
        return [("off", node.status), ("stale", "stale")]
    css = _STATUS_CSS.get(node.status, "builtin")
    return [(css, node.status)]


def code_cells(node: NodeInfo, mixed: dict[str, str]) -> list[tuple[str, str, bool]]:
    """(plugin, version, whether live nodes run several versions of it) for each plugin whose
    code the node runs, by name (a gone node is part of no mix)."""
    live = not is_gone(node)
    return [(name, version, live and name in mixed) for name, version in sorted(node.code_versions.items())]


def page_links(page: Page[Any], show_gone: bool) -> dict[str, str]:
    """The query strings of the previous and the next page (``previous``, ``next``), when there are."""
    base: dict[str, str | int] = {SHOW_GONE: "1"} if show_gone else {}
    links = {}
    if page.has_previous():
        links["previous"] = "?" + urlencode({**base, PAGE: page.previous_page_number()})
    if page.has_next():
        links["next"] = "?" + urlencode({**base, PAGE: page.next_page_number()})
    return links


def newest_first(errors: list[dict[str, str]]) -> list[dict[str, str]]:
    return sorted(errors, key=lambda error: str(error.get("at", "")), reverse=True)


class MaintenanceForm(forms.Form):
    """Turn maintenance mode on (with the message visitors read) or off."""

    action = forms.ChoiceField(choices=[("on", "on"), ("off", "off")])
    message = forms.CharField(
        required=False, max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60, "class": "vLargeTextField"}),
        help_text="Shown to visitors who are not staff while the site answers 503.",
    )


@admin.register(Node)
class NodeAdmin(FilterLookupsOnly):
    """The live nodes and maintenance mode; node rows are never edited here."""

    change_list_template = "admin/tachycore/node/change_list.html"
    fields = ("id", "kind", "name", "hostname", "pid", "status", "started", "heartbeat", "maintenance",
              "errors_display")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # each process writes its own row

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # old rows are pruned by the supervisor (NODE_RETENTION)

    @admin.display(description="last errors")
    def errors_display(self, node: Node) -> str:
        errors = newest_first(node.last_errors or [])
        if not errors:
            return "—"
        return format_html_join("", "<div><strong>{}</strong><pre>{}</pre></div>",
                                ((error.get("at", ""), error.get("message", "")) for error in errors))

    def get_urls(self) -> list:
        view = self.admin_site.admin_view  # staff only, CSRF-protected, never cached
        return [
            path("maintenance/", view(self.maintenance_view), name="tachycore_node_maintenance"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """Live processes (every process on ``?gone=1``), a page at a time, the count of the
        stopped and stale ones, and maintenance mode."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        show_gone = request.GET.get(SHOW_GONE) == "1"
        now = timezone.now()
        live = [node_info(node, now) for node in live_rows(now)]
        # every row, and the live ones among them: a count of an indexed table of a few thousand rows
        gone_count = max(Node.objects.count() - len(live), 0)
        state = maintenance.current()
        mixed = mixed_plugins(live)
        number = request.GET.get(PAGE)
        page: Page[Any]
        if show_gone:
            page = Paginator(Node.objects.all(), NODES_PER_PAGE).get_page(number)
            shown = [node_info(node, now) for node in page.object_list]
        else:
            page = Paginator(live, NODES_PER_PAGE).get_page(number)  # a page of any number that makes no sense
            shown = list(page.object_list)
        rows = [{
            "node": node,
            "badges": status_badges(node),
            "code": code_cells(node, mixed),
            "errors": newest_first(node.last_errors or []),
            "url": reverse("admin:tachycore_node_change", args=[quote(node.id)],
                           current_app=self.admin_site.name),
        } for node in shown]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Nodes and maintenance",
            "rows": rows,
            "page": page,
            "page_links": page_links(page, show_gone),
            "show_gone": show_gone,
            "gone_count": gone_count,
            "mixed": mixed,
            "state": state,
            "uptake": uptake(state, live),
            "can_change_maintenance": request.user.has_perm(MAINTENANCE_PERMISSION),
            "form": MaintenanceForm(initial={"message": state.message}),
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, self.change_list_template, context)

    def maintenance_view(self, request: HttpRequest) -> HttpResponse:
        """POST: turn maintenance on (with its message) or off, then back to the list."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not request.user.has_perm(MAINTENANCE_PERMISSION):
            raise PermissionDenied
        form = MaintenanceForm(request.POST)
        if not form.is_valid():
            problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items())
            self.message_user(request, f"Maintenance mode was not changed: {problems}", messages.ERROR)
        elif form.cleaned_data["action"] == "on":
            maintenance.turn_on(form.cleaned_data["message"])
            self.message_user(request, "Maintenance mode is on: every process answers 503 to all but staff.",
                              messages.SUCCESS)
        else:
            maintenance.turn_off()
            self.message_user(request, "Maintenance mode is off.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:tachycore_node_changelist", current_app=self.admin_site.name))
