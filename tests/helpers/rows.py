"""Rows tests write directly, as another process would have."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone


def make_node(node_id: str, *, kind: str = "web", status: str = "running", age: float = 0.0,
              maintenance: bool = False, errors: list[dict[str, str]] | None = None,
              name: str = "gunicorn", code_versions: dict[str, str] | None = None, pid: int = 4242):
    """A supervisor node row whose last heartbeat was ``age`` seconds ago, running the
    plugin code ``code_versions`` (plugin name -> version)."""
    from tachycore.models import Node

    now = timezone.now()
    return Node.objects.create(
        id=node_id, kind=kind, name=name, hostname="host-a", pid=pid, status=status,
        started=now - timedelta(seconds=age + 60), heartbeat=now - timedelta(seconds=age),
        maintenance=maintenance, last_errors=errors or [], code_versions=code_versions or {},
    )


def disable_in_registry(name: str) -> None:
    """Disable a built-in plugin in its registry row (``pm disable`` refuses to; a registry
    from an older release, or edited by hand, can still hold the state), and let this
    process see it."""
    from tachycore.manager import plugin_manager

    plugin_manager.registry.update(name, enabled=False)
    plugin_manager.refresh(force=True)
