"""``manage.py maintenance on --message "..." | off | status``."""

from __future__ import annotations

from typing import Any

from tachycore.management.arguments import name_the_actions
from tachycore.management.base import KernelCommand
from tachycore.supervisor import list_nodes


class Command(KernelCommand):
    help = "Turn maintenance mode on or off for every process of the site, or show it."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", title="actions", required=True)
        on = actions.add_parser("on", help="answer 503 with a message to everyone but staff")
        on.add_argument("--message", default="", help="the text shown to visitors")
        actions.add_parser("off", help="serve the site again")
        actions.add_parser("status", help="show the mode and which processes picked it up")
        name_the_actions(actions)

    def handle(self, *, action: str, **options: Any) -> None:
        from tachycore.maintenance import maintenance

        if action == "on":
            maintenance.turn_on(options["message"])
            self.stdout.write("Maintenance mode is on: every process answers 503 to all but staff.")
        elif action == "off":
            maintenance.turn_off()
            self.stdout.write("Maintenance mode is off.")
        else:
            state = maintenance.current()
            since = f" since {state.changed:%Y-%m-%d %H:%M:%S %Z}" if state.changed else ""
            self.stdout.write(f"Maintenance mode is {'on' if state.enabled else 'off'}{since}.")
            if state.enabled and state.message:
                self.stdout.write(f"Message: {state.message}")
            nodes = [node for node in list_nodes() if node.kind != "command"]
            seen = sum(node.maintenance == state.enabled for node in nodes)
            self.stdout.write(f"{seen} of {len(nodes)} live processes have picked it up.")
