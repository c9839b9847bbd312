"""Which plugin code the site's live processes run: how far a rolling restart has come.

Every node reports the version of each plugin whose code it runs (``Node.code_versions``,
written with its heartbeat). New code reaches a site by a rolling restart, so for a while
some processes run the old code and some the new. ``pm upgrade`` waits for the end of it:
the migrations and ``upgrade(from_version)`` it runs are written for the new code, which
the old processes do not have. The admin shows the versions each plugin runs at.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from .errors import OlderCodeRunning
from .models import NodeStatus
from .runtime import runtime
from .supervisor import NodeInfo, list_nodes

#: the version of a plugin whose code a node does not have (or a node that reports none:
#: it runs code older than the report)
MISSING = ""


def is_live(node: NodeInfo) -> bool:
    """A node with a fresh heartbeat that has not stopped."""
    return not node.stale and node.status != NodeStatus.STOPPED


def version_on(node: NodeInfo, name: str) -> str:
    """The version of plugin ``name`` whose code ``node`` runs; ``MISSING`` without it."""
    return node.code_versions.get(name, MISSING)


def running_other_code(name: str, version: str, nodes: Iterable[NodeInfo] | None = None) -> list[NodeInfo]:
    """The live nodes, other than this process, whose code of plugin ``name`` is not
    ``version`` (older, newer, or without the plugin)."""
    here = runtime.node_id
    found = list_nodes() if nodes is None else nodes
    return [node for node in found if is_live(node) and node.id != here and version_on(node, name) != version]


def refuse_other_code(name: str, version: str) -> None:
    """Raise ``OlderCodeRunning`` naming the live nodes whose code of ``name`` is not ``version``."""
    others = running_other_code(name, version)
    if others:
        raise OlderCodeRunning(name, version, [(describe(node), version_on(node, name)) for node in others])


def most_draining(name: str) -> tuple[int, NodeInfo | None]:
    """The live node, other than this process, that reports the most old instances of plugin
    ``name`` still draining, and how many (``0, None``: none does)."""
    here = runtime.node_id
    most, where = 0, None
    for node in list_nodes():
        report = node.instances.get(name) if isinstance(node.instances, dict) else None
        draining = len(report.get("draining", ())) if isinstance(report, dict) else 0
        if node.id != here and is_live(node) and draining > most:
            most, where = draining, node
    return most, where


def describe(node: NodeInfo) -> str:
    """How messages name a node: ``web host-a:4242``."""
    return f"{node.kind} {node.hostname}:{node.pid}"


def spread(name: str, nodes: Iterable[NodeInfo]) -> dict[str, int]:
    """How many live nodes run each version of plugin ``name``, oldest version first
    (``MISSING`` last)."""
    counts = Counter(version_on(node, name) for node in nodes if is_live(node))
    return dict(sorted(counts.items(), key=lambda item: _version_key(item[0])))


def mixed(name: str, nodes: Iterable[NodeInfo]) -> str:
    """``"1.0.0 on 2 nodes, 1.1.0 on 1 node"`` when live nodes run different versions of
    plugin ``name``; ``""`` when they all run the same one (or there is none)."""
    counts = spread(name, nodes)
    if len(counts) < 2:
        return ""
    return ", ".join(f"{version or 'missing'} on {count} node{'s' if count != 1 else ''}"
                     for version, count in counts.items())


def mixed_plugins(nodes: Iterable[NodeInfo]) -> dict[str, str]:
    """Each plugin that live nodes run at different versions, with :func:`mixed`'s summary."""
    live = [node for node in nodes if is_live(node)]
    names = sorted({name for node in live for name in node.code_versions})
    return {name: summary for name in names if (summary := mixed(name, live))}


def _version_key(version: str) -> tuple:
    """Sorts "1.10.0" after "1.9.0", and a missing version after every other."""
    parts = tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+]", version))
    return (version == MISSING, parts)
