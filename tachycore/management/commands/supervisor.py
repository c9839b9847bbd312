"""``manage.py supervisor``: the live processes of the site, from any process."""

from __future__ import annotations

from typing import Any

from tachycore.management.base import KernelCommand
from tachycore.management.tables import dumps, format_table
from tachycore.supervisor import NodeInfo, list_nodes, prune_nodes
from tachycore.versions import mixed_plugins


class Command(KernelCommand):
    help = "List the site's processes (nodes) with their status, heartbeat age and plugin code versions."
    registers_node = False

    def add_arguments(self, parser) -> None:
        parser.add_argument("--all", action="store_true", help="include stale and stopped nodes")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--prune", action="store_true",
                            help='delete node rows older than TACHYCORE["NODE_RETENTION"] first')

    def handle(self, *, all: bool, json: bool, prune: bool, **options: Any) -> None:
        if prune:
            self.stderr.write(f"Pruned {prune_nodes()} old node rows.")
        nodes = list_nodes(include_gone=all)
        if json:
            self.stdout.write(dumps([node.to_json() for node in nodes]))
            return
        if not nodes:
            self.stdout.write("No live nodes.")
            return
        rows = [("NODE", "KIND", "STATUS", "HEARTBEAT", "MAINTENANCE", "ERRORS", "PROCESS")]
        for node in nodes:
            status = f"{node.status} (stale)" if node.stale else node.status
            rows.append((node.id, node.kind, status, f"{node.heartbeat_age:.1f}s ago",
                         "on" if node.maintenance else "off", str(len(node.last_errors)), node.name))
        for line in format_table(rows):
            self.stdout.write(line)
        for node in nodes:
            self.stdout.write(f"{node.id}: code: {code_of(node)}")
        for name, summary in mixed_plugins(nodes).items():
            self.stdout.write(f"{name}: mixed: {summary}")
        for node in nodes:
            for error in node.last_errors[:3]:
                self.stdout.write(f"{node.id}: {error['at']}: {error['message']}")


def code_of(node: NodeInfo) -> str:
    """The plugin versions a node runs, as ``audit 1.0.0, kv 0.1.0``."""
    if not node.code_versions:
        return "no versions reported"
    return ", ".join(f"{name} {version}" for name, version in sorted(node.code_versions.items()))
