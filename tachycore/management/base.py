"""A base for commands that run as a supervisor node (status "commanding")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from tachycore.conf import tachycore_settings
from tachycore.models import NodeStatus
from tachycore.runtime import runtime


class KernelCommand(BaseCommand):
    """A kernel command: registers its process as a supervisor node while it runs,
    and reports database errors as one line, not a traceback.

    The node is registered only when the command runs as its own process
    (``manage.py ...``), not through ``call_command`` inside another process,
    which is a node already. A command that fails leaves its error on its node.
    """

    #: whether the command's process shows as a node (status "commanding")
    registers_node = True
    _owns_node = False

    def execute(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute(*args, **options)
        except DatabaseError as e:
            error = CommandError(_database_error(e))
            self._record(error)
            raise error from e
        except Exception as e:
            self._record(e)
            raise

    def _record(self, error: Exception) -> None:
        if self._owns_node:
            runtime.supervisor.record_error(f"manage.py {self._command_name()} failed: {error}")

    def run_from_argv(self, argv: list[str]) -> None:
        self._owns_node = self.registers_node and not runtime.started and tachycore_settings.START_RUNTIME
        if self._owns_node:
            runtime.start(kind="command", name=f"manage.py {self._command_name()}",
                          status=NodeStatus.COMMANDING, listen=False)
        try:
            super().run_from_argv(argv)
        finally:
            if self._owns_node:
                runtime.stop()

    def _command_name(self) -> str:
        return type(self).__module__.rsplit(".", 1)[-1]


def _database_error(error: DatabaseError) -> str:
    text = str(error).strip()
    missing_table = "no such table" in text or ("relation" in text and "does not exist" in text)
    return f"database error: {text}" + (" (has 'manage.py migrate' run?)" if missing_table else "")
