"""Jobs that wait because their plugin is not enabled.

A plugin's handlers (and its ``django.tasks`` tasks) run only while the plugin is
enabled; until then its jobs stay pending. The dispatcher asks :func:`blocked_apps`
before each claim (it reads the plugin manager's cached state: no query), and
``runjobs`` reports what waits with :func:`held_by_plugin` and :func:`describe_held`,
so that an app with a ``plugin.py`` that nobody enabled is never silent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.db.models import Count, Q
from django.utils import timezone

from .handlers import handlers
from .models import Job

__all__ = ["Held", "blocked_apps", "blocked_topics", "describe_held", "held_by_plugin"]

#: how each state of a plugin that is not enabled reads in runjobs' output
_STATES = {"disabled": "disabled", "added": "not enabled", "not added": "not added"}


@dataclasses.dataclass(frozen=True)
class Held:
    """Due jobs of one plugin that no dispatcher takes."""

    plugin: str
    #: "disabled", "not enabled" (added, never enabled) or "not added"
    state: str
    count: int

    def __str__(self) -> str:
        return f"{self.count} for {self.plugin} ({self.state}: manage.py pm enable {self.plugin})"


def _closed_plugins() -> dict[str, tuple[str, str]]:
    """Plugin name -> (app label, package prefix) of the plugins with an app that are not enabled."""
    from tachycore.manager import plugin_manager

    return {name: (plugin.app_label, plugin.package_name + ".")
            for name, plugin in plugin_manager.plugins.items()
            if plugin.app_label and not plugin_manager.is_enabled(name)}


def blocked_apps() -> tuple[set[str], list[str]]:
    """App labels and package prefixes (of task paths) of the plugins that are not enabled now."""
    closed = _closed_plugins().values()
    return {label for label, _ in closed}, [prefix for _, prefix in closed]


def blocked_topics(only: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Plugin name -> the handler topics it holds back (among ``only``, when given)."""
    closed = {label: name for name, (label, _) in _closed_plugins().items()}
    found: dict[str, list[str]] = {}
    for entry in handlers:
        if entry.app_label in closed and (only is None or entry.topic in only):
            found.setdefault(closed[entry.app_label], []).append(entry.topic)
    return {name: sorted(topics) for name, topics in sorted(found.items())}


def held_by_plugin(only: Sequence[str] | None = None, using: str | None = None) -> list[Held]:
    """Due pending jobs of plugins that are not enabled, most first (among the topics and
    task paths ``only``, when given). One query, and one registry read per plugin found."""
    closed = _closed_plugins()
    if not closed:
        return []
    by_topic = {topic: name for name, topics in blocked_topics(only).items() for topic in topics}
    match = Q(task_backend="", topic__in=list(by_topic))
    for _, prefix in closed.values():
        match |= ~Q(task_backend="") & Q(topic__startswith=prefix)
    counts: dict[str, int] = {}
    rows = (Job.objects.using(using).due(timezone.now()).filter(match)
            .values_list("topic", "task_backend").annotate(n=Count("*")).order_by())
    for topic, task_backend, n in rows:
        if only is not None and topic not in only:
            continue
        name = by_topic.get(topic) if not task_backend else _owner(topic, closed)
        if name is not None:
            counts[name] = counts.get(name, 0) + n
    return sorted((Held(name, _state(name), n) for name, n in counts.items()), key=lambda h: (-h.count, h.plugin))


def describe_held(held: list[Held]) -> str:
    """``"12 held: 10 for notes (not enabled: manage.py pm enable notes), 2 for ..."``, or ``"0 held"``."""
    total = sum(h.count for h in held)
    return f"{total} held: " + ", ".join(map(str, held)) if held else "0 held"


def _owner(task_path: str, closed: dict[str, tuple[str, str]]) -> str | None:
    return next((name for name, (_, prefix) in closed.items() if task_path.startswith(prefix)), None)


def _state(name: str) -> str:
    from tachycore.manager import plugin_manager

    return _STATES.get(plugin_manager.get(name).status, "not enabled")
