"""The supervisor: every process of the site is a node with a heartbeat, a status and its errors."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import socket
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.db.models import QuerySet
from django.utils import timezone

from .conf import tachycore_settings
from .context import builtin_statements
from .models import Node, NodeStatus

logger = logging.getLogger("tachycore.supervisor")

MAX_ERRORS = 10


def new_node_id() -> str:
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(4)}"


class Supervisor:
    """This process's node row.

    Changes (status, maintenance seen, errors) are kept in memory and written by
    the runtime's background thread, on its own connection and outside any
    transaction of the caller, at once and then with every heartbeat. Database
    errors are logged, never raised: a process keeps serving when its heartbeat
    cannot be written (before ``migrate``, or during a failover).
    """

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.kind = ""
        self.name = ""
        self.status: str = NodeStatus.INITIALIZING
        self.maintenance = False
        self.started = timezone.now()
        self.errors: deque[dict[str, str]] = deque(maxlen=MAX_ERRORS)
        self.registered = False
        #: set by the runtime: asks its thread to write the row now
        self.wake: Callable[[], None] = lambda: None
        #: the version of each plugin whose code this process runs, set by the kernel above
        #: once its plugins are discovered (a receiver of ``process_started``)
        self.code_versions: dict[str, str] = {}
        #: set by the layer that keeps plugin instances: what they are now, written as ``instances``
        self.instances_report: Callable[[], dict] = dict
        self._lock = threading.Lock()
        self._failing = False  # the last write failed: say so once, not at every heartbeat

    def register(self, kind: str, name: str = "", status: str = NodeStatus.RUNNING) -> None:
        self.kind, self.name, self.status = kind, name[:200], status
        self.registered = True
        self.wake()

    def _values(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "name": self.name, "hostname": socket.gethostname()[:255], "pid": os.getpid(),
            "status": self.status, "started": self.started, "heartbeat": timezone.now(),
            "maintenance": self.maintenance, "last_errors": list(self.errors),
            "code_versions": dict(self.code_versions), "instances": self._instances(),
        }

    def _instances(self) -> dict:
        try:
            return self.instances_report()
        except Exception as e:  # a report from the layer above must not stop the heartbeat
            logger.warning("supervisor: instances not reported: %s: %s", type(e).__name__, e)
            return {}

    def write(self) -> None:
        """Write the node row now (heartbeat, status, maintenance seen, errors)."""
        if not self.registered:
            return
        with self._lock, builtin_statements():
            try:
                Node.objects.update_or_create(id=self.node_id, defaults=self._values())
            except DatabaseError as e:
                level = logging.DEBUG if self._failing else logging.WARNING
                logger.log(level, "supervisor: cannot write node %s: %s", self.node_id, e)
                self._failing = True
            else:
                self._failing = False

    def set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            self.wake()

    def set_maintenance(self, enabled: bool) -> None:
        """Record that this process picked up maintenance mode (or its end)."""
        self.maintenance = enabled
        if self.status in (NodeStatus.RUNNING, NodeStatus.MAINTAINING):
            self.status = NodeStatus.MAINTAINING if enabled else NodeStatus.RUNNING
        self.wake()

    def record_error(self, message: str) -> None:
        """Keep an error on this node (the newest ten), for ``manage.py supervisor`` and the admin."""
        self.errors.appendleft({"at": timezone.now().isoformat(), "message": message[:2000]})
        self.wake()


@dataclasses.dataclass(frozen=True)
class NodeInfo:
    """A node as another process sees it."""

    id: str
    kind: str
    name: str
    hostname: str
    pid: int
    status: str
    started: datetime
    heartbeat: datetime
    heartbeat_age: float
    stale: bool
    maintenance: bool
    last_errors: list[dict[str, str]]
    #: plugin name -> the version of the code this node runs ({} from a node that reports none)
    code_versions: dict[str, str] = dataclasses.field(default_factory=dict)
    #: this node's plugin instances, as it reports them
    instances: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["started"] = self.started.isoformat()
        data["heartbeat"] = self.heartbeat.isoformat()
        return data


def list_nodes(include_gone: bool = False) -> list[NodeInfo]:
    """Nodes with a fresh heartbeat (and, with ``include_gone``, stale and stopped ones)."""
    now = timezone.now()
    rows = Node.objects.all() if include_gone else live_rows(now)
    return [node_info(node, now) for node in rows]


def live_rows(now: datetime) -> QuerySet[Node]:
    """The rows of the nodes live at ``now``: a heartbeat within ``NODE_TIMEOUT``, not stopped
    (read through the heartbeat index, however many old rows wait for the prune)."""
    fresh = now - timedelta(seconds=tachycore_settings.NODE_TIMEOUT)
    return Node.objects.filter(heartbeat__gte=fresh).exclude(status=NodeStatus.STOPPED)


def node_info(node: Node, now: datetime) -> NodeInfo:
    """``node`` as seen at ``now``: stale when its heartbeat is older than ``NODE_TIMEOUT``."""
    age = (now - node.heartbeat).total_seconds()
    stale = age > tachycore_settings.NODE_TIMEOUT and node.status != NodeStatus.STOPPED
    return NodeInfo(
        id=node.id, kind=node.kind, name=node.name, hostname=node.hostname, pid=node.pid,
        status=node.status, started=node.started, heartbeat=node.heartbeat, heartbeat_age=round(age, 1),
        stale=stale, maintenance=node.maintenance, last_errors=node.last_errors,
        code_versions=node.code_versions or {}, instances=node.instances or {},
    )


def prune_nodes() -> int:
    """Delete node rows whose heartbeat is older than ``NODE_RETENTION``; return how many."""
    cutoff = timezone.now() - timedelta(seconds=tachycore_settings.NODE_RETENTION)
    deleted, _ = Node.objects.filter(heartbeat__lt=cutoff).delete()
    return deleted
