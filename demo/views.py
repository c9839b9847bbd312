"""The demo's landing page at ``/`` (also the admin's "View site") and its docs pages."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from jobs.conf import jobs_settings
from kv.conf import kv_settings
from tachycore.errors import PluginError
from tachycore.manager import plugin_manager

DOCS_DIR = Path(settings.BASE_DIR) / "docs"

#: the switch that serves a built-in plugin's HTTP API, besides the plugin being enabled
HTTP_SWITCHES = {
    "kv": (lambda: kv_settings.HTTP_ENABLED, "KV_HTTP_ENABLED=true make run"),
    "jobs": (lambda: jobs_settings.HTTP_ENABLED, "JOBS_HTTP_ENABLED=true make run"),
}


@dataclasses.dataclass(frozen=True)
class Api:
    name: str
    description: str
    on: bool
    #: what turns it on, while it is off
    how_to_enable: str


def plugin_apis() -> list[Api]:
    """Every plugin that serves URLs at ``/api/<name>/``, and whether it answers now."""
    apis = []
    for info in plugin_manager.list():
        if not info.urls or info.missing:
            continue
        switch, turn_on = HTTP_SWITCHES.get(info.name, (lambda: True, ""))
        if not info.enabled:
            apis.append(Api(info.name, info.description, False, _enable_command(info.name)))
        else:
            apis.append(Api(info.name, info.description, switch(), turn_on))
    return apis


def _enable_command(name: str) -> str:
    """``pm enable``, with ``--grant-requested`` while the plugin (or one it depends on)
    asks for capabilities nobody granted (``pm grants`` lists them first)."""
    try:
        asks = bool(plugin_manager.ungranted(name))
    except PluginError:
        asks = False  # pm enable says what is wrong with its dependencies
    return f"manage.py pm enable {name}" + (" --grant-requested" if asks else "")


def doc_names() -> list[str]:
    return sorted(path.name for path in DOCS_DIR.glob("*.md"))


def doc_title(name: str) -> str:
    """The first heading of a docs file (its first line, without the ``#``)."""
    with (DOCS_DIR / name).open(encoding="utf-8") as file:
        return file.readline().lstrip("#").strip()


def home(request: HttpRequest) -> HttpResponse:
    """Links to the admin, each plugin's API (on or off, and how to turn it on), the
    OpenAPI schema and the docs."""
    docs = [(name, doc_title(name)) for name in doc_names()]
    return render(request, "demo/home.html", {"apis": plugin_apis(), "docs": docs})


def doc(request: HttpRequest, name: str) -> FileResponse:
    """One Markdown file of the repository's ``docs/``, as plain text."""
    if name not in doc_names():  # only the files listed: no path reaches outside docs/
        raise Http404(f"no document {name}")
    response = FileResponse((DOCS_DIR / name).open("rb"), content_type="text/plain; charset=utf-8")
    response["X-Content-Type-Options"] = "nosniff"
    return response
