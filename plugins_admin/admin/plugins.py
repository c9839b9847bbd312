"""Admin pages: the plugin manager.

The plugin list shows every plugin the site knows (recorded in the registry or only
discovered), with its state, and the versions live processes run of it when they differ
(a rolling restart under way, ``tachycore.versions``). Each lifecycle operation has a confirmation page that
says what it will do (``tachycore.plans``); its POST calls the plugin manager, never an
editable field, and reports the outcome with Django's messages. A refused operation
changes nothing and says why.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from tachycore.errors import PluginError
from tachycore.manager import plugin_manager
from tachycore.models import ApplicationPlugin
from tachycore.plans import OPERATIONS, plan
from tachycore.registry.validation import is_valid_name
from tachycore.supervisor import list_nodes
from tachycore.versions import mixed_plugins

from .lookups import FilterLookupsOnly

#: the model permission each operation needs (besides staff)
PERMISSIONS = {"add": "add", "install": "change", "enable": "change", "disable": "change",
               "reload": "change", "upgrade": "change", "remove": "delete"}
VERBS = {"add": "Add", "install": "Install", "enable": "Enable", "disable": "Disable",
         "reload": "Reload", "upgrade": "Upgrade", "remove": "Remove"}


def perform(operation: str, name: str, *, grant_requested: bool = False, granted_by: str = "") -> str:
    """Run one operation through the plugin manager; return what happened, in words.

    ``grant_requested`` (enable only): grant what the plugins it enables ask for."""
    if operation == "add":
        plugin_manager.add(name)
        return f"Plugin {name} was added to the registry."
    if operation == "install":
        plugin_manager.install(name)
        return f"Plugin {name} was installed."
    if operation == "enable":
        done = plugin_manager.enable(name, grant_requested=grant_requested, granted_by=granted_by)
        others = [other for other in done if other != name]
        also = f" (with {', '.join(others)}, which it needs)" if others else ""
        granted = " What they asked for was granted." if grant_requested and done else ""
        return (f"Plugin {name} was enabled{also}.{granted}" if done else f"Plugin {name} was enabled already.")
    if operation == "disable":
        done = plugin_manager.disable(name)
        if not done:
            return f"Plugin {name} was disabled already."
        drain = plugin_manager.drains.get(name)  # what became of the calls inside, when there were some
        return f"Plugin {name} was disabled ({drain.describe()})." if drain and drain.calls else f"Plugin {name} was disabled."
    if operation == "reload":
        generation = plugin_manager.reload(name)
        return (f"Plugin {name} is reloading: every process switches to instance #{generation}; "
                "calls inside the old one finish there.")
    if operation == "upgrade":
        before, after = plugin_manager.upgrade(name)
        return f"Plugin {name} was upgraded from {before} to {after}."
    plugin_manager.remove(name)
    return f"Plugin {name} was removed from the registry (its tables are kept)."


def ungranted_requests(name: str) -> list[tuple[str, str, str]]:
    """(plugin, capability, access) that enabling ``name`` (and what it needs) asks for and
    nobody granted; empty when governance does not enforce."""
    if name not in plugin_manager.plugins:
        return []
    try:
        missing = plugin_manager.ungranted(name)
    except PluginError:
        return []  # the plan says why enabling is refused
    return [(plugin, capability, access.name)
            for plugin, found in missing.items() for capability, access in found.items()]


def badges(info: Any) -> list[tuple[str, str]]:
    """(css class, text) badges for a plugin's state."""
    found = []
    if info.missing:
        found.append(("missing", "missing"))
    elif not info.added:
        found.append(("new", "not added"))
    else:
        found.append(("on", "enabled") if info.enabled else ("off", "disabled"))
        found.append(("on", "installed") if info.installed else ("off", "not installed"))
    if info.upgradable:
        found.append(("new", f"upgrade to {info.version}"))
    if info.last_error:
        found.append(("error", "error"))
    if info.built_in:
        found.append(("builtin", "built in"))
    return found


def available_operations(info: Any) -> list[str]:
    """The operations that make sense for a plugin now (each page still checks it)."""
    if info.missing:
        return ["disable"] if info.enabled else ["remove"]
    if not info.added:
        return ["add", "install", "enable"]
    ops = ([] if info.built_in else ["disable"]) if info.enabled else ["enable"]
    if info.enabled:
        ops.append("reload")
    if not info.installed:
        ops.append("install")
    if info.upgradable:
        ops.append("upgrade")
    if not info.enabled and not info.built_in:
        ops.append("remove")
    return ops


@admin.register(ApplicationPlugin)
class PluginAdmin(FilterLookupsOnly):
    """The plugin manager's pages; the registry rows are never edited as a form."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # plugins are added from the list, through the manager

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # state changes go through the operations, not through a form

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # "remove" runs the plugin's hooks; Django's delete would not

    def get_urls(self) -> list:
        view = self.admin_site.admin_view  # staff only, CSRF-protected, never cached
        return [
            path("<str:name>/<str:operation>/", view(self.operation_view),
                 name="tachycore_applicationplugin_operation"),
            path("<str:name>/", view(self.plugin_redirect), name="tachycore_applicationplugin_change"),
            path("", view(self.changelist_view), name="tachycore_applicationplugin_changelist"),
        ]

    def _allowed(self, request: HttpRequest, operation: str) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.{PERMISSIONS[operation]}_{opts.model_name}")

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        plugin_manager.refresh(force=True)
        mixed = mixed_plugins(list_nodes())
        rows = []
        for info in plugin_manager.list():
            operations = [(op, VERBS[op]) for op in available_operations(info) if self._allowed(request, op)]
            rows.append({"info": info, "badges": badges(info), "operations": operations,
                         "mixed": mixed.get(info.name, "")})
        problems = plugin_manager.discovery_problems + [
            ("registry", f"row {name!r} is skipped (fix or delete it by hand): {why}")
            for name, why in plugin_manager.registry.invalid_records()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Plugins",
            "subtitle": None,
            "opts": self.model._meta,
            "rows": rows,
            "problems": problems,
            "has_view_permission": True,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tachycore/applicationplugin/plugin_list.html", context)

    def plugin_redirect(self, request: HttpRequest, name: str) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:tachycore_applicationplugin_changelist") + f"#plugin-{name}")

    def operation_view(self, request: HttpRequest, name: str, operation: str) -> HttpResponse:
        if operation not in OPERATIONS or not is_valid_name(name):
            raise Http404(f"no operation {operation!r} for a plugin named {name!r}")
        if not self._allowed(request, operation):
            raise PermissionDenied
        changelist = reverse("admin:tachycore_applicationplugin_changelist")
        asked = ungranted_requests(name) if operation == "enable" else []
        may_grant = request.user.has_perm("tachycore.add_capabilitygrant")
        if request.method == "POST":
            grant = operation == "enable" and may_grant and request.POST.get("grant_requested") == "on"
            try:
                messages.success(request, perform(operation, name, grant_requested=grant,
                                                  granted_by=f"admin ({request.user.get_username()})"))
            except PluginError as e:
                messages.error(request, f"{VERBS[operation]} {name}: refused, nothing was changed: {e}")
            return HttpResponseRedirect(changelist)
        found = plan(operation, name)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{VERBS[operation]} plugin {name}?",
            "subtitle": None,
            "opts": self.model._meta,
            "plan": found,
            "verb": VERBS[operation],
            "name": name,
            "changelist_url": changelist,
            "asked": asked,
            "may_grant": may_grant,
            "grants_url": reverse("admin:tachycore_capabilitygrant_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tachycore/applicationplugin/confirm_operation.html", context)
