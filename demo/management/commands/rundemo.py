"""``manage.py rundemo [addrport] [--noreload]``: the web server, ``runjobs`` and ``qcluster`` together."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

import jobs
from demo.processes import GRACE, Child, ChildDied, ProcessGroup


class Command(BaseCommand):
    help = ("Run the development server, the job dispatcher (runjobs) and django-q2's cluster "
            "(qcluster, the schedules) side by side until Ctrl-C, SIGTERM or SIGHUP (a closed terminal), "
            "which stops all three; if one of them exits, the others are stopped and the command fails. "
            "They are stopped even if this command is killed.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("addrport", nargs="?", default="127.0.0.1:8000",
                            help="where the web server listens (default: 127.0.0.1:8000)")
        parser.add_argument("--noreload", action="store_true",
                            help="do not restart the web server when the code changes")
        # 5 s by default: each of the three stops within about 2 s (see demo.processes.GRACE)
        parser.add_argument("--grace", type=float, default=GRACE,
                            help=f"seconds to wait for the three to stop before killing them (default: {GRACE:g})")

    def handle(self, *, addrport: str, noreload: bool, grace: float, **options: Any) -> None:
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        web = [*manage, "runserver", addrport, *(["--noreload"] if noreload else [])]
        children = [
            # the autoreloader serves from a second process: signal both
            Child("web", web, signal_group=True),
            Child("runjobs", [*manage, "runjobs"]),
            Child("qcluster", [*manage, "qcluster"], repeat=True),
        ]
        if jobs.get_job_store() is None:  # JOBS_DISABLED: runjobs would exit at once
            children = [child for child in children if child.name != "runjobs"]
        group = ProcessGroup(children, grace=grace, out=self.stdout)
        names = ", ".join(child.name for child in children[1:])
        self.stdout.write(f"rundemo: web on http://{addrport}/ with {names}; Ctrl-C stops them all "
                          f"(killed if still running {grace:g}s later)")
        try:
            group.run()
        except ChildDied as e:
            raise CommandError(str(e)) from None
        self.stdout.write("rundemo: stopped")
