"""``manage.py kv_cleanup [--loop [--interval 60]] [--batch-size N]``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone

from kv.cleanup import CleanupLoop, cleanup_expired
from kv.conf import kv_settings
from tachycore.management.arguments import positive_duration, positive_integer
from tachycore.management.base import KernelCommand


class Command(KernelCommand):
    help = (
        "Delete expired keys from the key-value store: one pass, or with --loop a pass "
        "every --interval until SIGINT or SIGTERM."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--loop", action="store_true",
                            help="keep running, a pass every --interval, until SIGINT or SIGTERM")
        parser.add_argument("--interval", metavar="DURATION",
                            help='time between passes with --loop: seconds or "500ms", "30s", "2m" '
                                 '(default: KV["CLEANUP_INTERVAL"])')
        parser.add_argument("--batch-size", metavar="N",
                            help='rows deleted per statement; on SQLite walking the table, of the first '
                                 'and smallest batch (default: KV["CLEANUP_BATCH_SIZE"])')

    def handle(self, *, loop: bool, interval: str | None, batch_size: str | None, verbosity: int,
               **options: Any) -> None:
        size = positive_integer(batch_size, "--batch-size")
        seconds = positive_duration(interval, "--interval")
        if kv_settings.DISABLED:  # not an error: a site may turn kv off and keep its crontab
            if verbosity >= 1:
                self.stdout.write("kv is disabled (KV['DISABLED']): nothing to clean up.")
            return
        if not loop:
            if seconds is not None:
                raise CommandError("--interval needs --loop")
            removed = cleanup_expired(size)
            if verbosity >= 1:
                self.stdout.write(_removed(removed))
            return
        runner = CleanupLoop(seconds or kv_settings.CLEANUP_INTERVAL, size,
                             on_pass=lambda removed: self._passed(removed, verbosity),
                             on_error=self._failed)
        with runner.stopping_on_signals():
            removed = runner.run()
        if verbosity >= 1:
            self.stdout.write(_removed(removed))

    def _passed(self, removed: int, verbosity: int) -> None:
        if removed or verbosity >= 2:
            self.stdout.write(f"{timezone.now():%Y-%m-%d %H:%M:%S} pass: removed {removed} expired "
                              f"{'key' if removed == 1 else 'keys'}")
            self.stdout.flush()  # a log line now, not when a pipe's buffer fills

    def _failed(self, error: DatabaseError) -> None:
        from tachycore.runtime import runtime

        message = f"kv cleanup pass failed: {error}"
        self.stderr.write(f"{timezone.now():%Y-%m-%d %H:%M:%S} {message} (retrying in the next pass)")
        self.stderr.flush()
        if runtime.started:
            runtime.supervisor.record_error(message)


def _removed(count: int) -> str:
    return f"Removed {count} expired {'key' if count == 1 else 'keys'}."
