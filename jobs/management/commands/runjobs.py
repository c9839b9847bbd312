"""``manage.py runjobs [--workers N] [--topics a,b] [--burst]``: run the job dispatcher.

While jobs is disabled (``JOBS["DISABLED"]``) it says so in one line and exits 0: turning
the queue off is a setting, not a failure, and a process manager that restarts failed
units must not loop on it.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from jobs.conf import jobs_settings
from tachycore.management.arguments import positive_integer


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _is_task(path: str) -> bool:
    from django.tasks import Task
    from django.utils.module_loading import import_string

    try:
        return isinstance(import_string(path), Task)
    except ImportError:
        return False


class Command(BaseCommand):
    help = ("Run due jobs on a pool of worker threads until SIGTERM or Ctrl-C (a second one stops at "
            "once); with --burst, run what is due now and exit.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--workers", help="worker threads (default: JOBS['WORKERS'])")
        parser.add_argument("--topics", help="only these topics (or task paths), comma-separated")
        parser.add_argument("--burst", action="store_true", help="run the jobs due now, then exit")

    def handle(self, *, workers: str | None, topics: str | None, burst: bool, **options: Any) -> None:
        from jobs.dispatcher import Dispatcher
        from tachycore.conf import tachycore_settings
        from tachycore.models import NodeStatus
        from tachycore.runtime import runtime

        count = positive_integer(workers, "--workers") or jobs_settings.WORKERS
        topic_list = self._topics(topics)
        if jobs_settings.DISABLED:
            self.stdout.write("runjobs: jobs is disabled (JOBS['DISABLED'] or JOBS_DISABLED); nothing to run")
            return
        if tachycore_settings.START_RUNTIME:
            runtime.start(kind="dispatcher", name=f"runjobs ({_plural(count, 'worker')})",
                          status=NodeStatus.RUNNING)
        dispatcher = Dispatcher(workers=count, topics=topic_list, burst=burst)
        self._install_signals(dispatcher)
        self.stdout.write(self._banner(dispatcher, topic_list, burst))
        printer = self._start_status(dispatcher)
        try:
            counters = dispatcher.run()
        finally:
            if printer is not None:
                printer.set()
            if tachycore_settings.START_RUNTIME:
                runtime.stop()
        self.stdout.write(f"runjobs {dispatcher.name}: stopped; {counters.completed} completed, "
                          f"{counters.failed} failed, {counters.retried} retried, {self._held(topic_list)}")

    def _topics(self, topics: str | None) -> list[str] | None:
        """``--topics`` as a list (``None``: all); warns about a name nothing can run."""
        from jobs.handlers import handlers

        topic_list = [t.strip() for t in topics.split(",") if t.strip()] if topics else None
        if topics is not None and not topic_list:
            raise CommandError("--topics needs at least one topic")
        for topic in topic_list or ():
            if topic not in handlers and not _is_task(topic):
                self.stderr.write(f"runjobs: no handler for topic {topic!r} in this process, and no "
                                  "django.tasks task of that path: its jobs will wait")
        return topic_list

    def _banner(self, dispatcher: Any, topic_list: list[str] | None, burst: bool) -> str:
        from jobs.handlers import handlers

        known = ", ".join(handlers.topics()) or "none"
        return (f"runjobs {dispatcher.name}: {_plural(dispatcher.workers, 'worker')}, topics: "
                f"{', '.join(topic_list) if topic_list else 'all'} (handlers: {known}){', burst' if burst else ''}")

    def _held(self, topic_list: list[str] | None) -> str:
        from django.db import DatabaseError

        from jobs.gating import describe_held, held_by_plugin

        try:
            return describe_held(held_by_plugin(topic_list))
        except DatabaseError as e:
            return f"held jobs not counted ({e})"

    def _install_signals(self, dispatcher: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def stop(signum: int, frame: Any) -> None:
            if dispatcher.stopping:
                # a second signal: leave now; unfinished claims come back when their lease ends
                os._exit(128 + signum)
            self.stdout.write(f"runjobs: {signal.Signals(signum).name}, finishing running jobs "
                              f"(up to {dispatcher.shutdown_timeout:.0f}s; again to stop at once)")
            dispatcher.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def _start_status(self, dispatcher: Any) -> threading.Event | None:
        interval = jobs_settings.STATUS_INTERVAL
        if interval <= 0:
            return None
        done = threading.Event()

        def report() -> None:
            from django.db import connections

            from jobs.dispatcher import copy_counters

            previous, last = copy_counters(dispatcher.counters), time.monotonic()
            while not done.wait(interval):
                now = time.monotonic()
                self.stdout.write(dispatcher.status_line(previous, now - last))
                previous, last = copy_counters(dispatcher.counters), now
                connections.close_all()

        threading.Thread(target=report, name="jobs-status", daemon=True).start()
        return done
