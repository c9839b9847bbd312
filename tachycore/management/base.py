"""A base for commands that run as a supervisor node (status "commanding")."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class KernelCommand(BaseCommand):
    """Registers the command's process as a supervisor node while it runs.

    Only when run as its own process (``manage.py ...``), not through
    ``call_command`` inside another process, which is a node already.
    """

    def run_from_argv(self, argv: list[str]) -> None:
        from tachycore.conf import tachycore_settings
        from tachycore.models import NodeStatus
        from tachycore.runtime import runtime

        owner = not runtime.started and tachycore_settings.START_RUNTIME
        if owner:
            runtime.start(kind="command", name=f"manage.py {self._command_name()}",
                          status=NodeStatus.COMMANDING, listen=False)
        try:
            super().run_from_argv(argv)
        finally:
            if owner:
                runtime.stop()

    def _command_name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]
