"""Rows tests write directly, as another process would have."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone


def make_node(node_id: str, *, kind: str = "web", status: str = "running", age: float = 0.0,
              maintenance: bool = False, errors: list[dict[str, str]] | None = None,
              name: str = "gunicorn"):
    """A supervisor node row whose last heartbeat was ``age`` seconds ago."""
    from tachycore.models import Node

    now = timezone.now()
    return Node.objects.create(
        id=node_id, kind=kind, name=name, hostname="host-a", pid=4242, status=status,
        started=now - timedelta(seconds=age + 60), heartbeat=now - timedelta(seconds=age),
        maintenance=maintenance, last_errors=errors or [],
    )
