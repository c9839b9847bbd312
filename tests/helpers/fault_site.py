"""The site's processes in the fault tests: web servers and ``runjobs`` on the test's own
database, their output in files (read when a test fails)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers.http import status_of
from tests.helpers.netns import NetnsHost
from tests.helpers.processes import ROOT, free_port, wait_until

#: the database the fault tests create and migrate on their own cluster
DATABASE = "faults"


def site_env(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of the site's processes (test settings) on ``database_url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.pop("TEST_PREPARE_THRESHOLD", None)
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", TACHYCORE_START_RUNTIME="true", PYTHONPATH=str(ROOT),
               DATABASE_URL=database_url, JOBS_STATUS_INTERVAL="0")
    env.update(overrides)
    return env


class SiteProcesses:
    """The site's processes a test starts; their output goes to files (read on failure)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.procs: list[tuple[subprocess.Popen, Path]] = []

    def start(self, env: dict[str, str], *args: str, netns: NetnsHost | None = None) -> subprocess.Popen:
        argv = [sys.executable, str(ROOT / "manage.py"), *args]
        log = self.directory / f"{len(self.procs)}-{args[0]}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(netns.command(argv) if netns else argv, env=env, cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT)
        self.procs.append((proc, log))
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        return next(log.read_text() for p, log in self.procs if p is proc)

    def stop_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a stopped process would not see SIGTERM
                proc.terminate()
        for proc, _ in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_web(processes: SiteProcesses, env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    """A ``runserver --noreload`` on a free port; its URL and process once it answers."""
    port = free_port()
    proc = processes.start(env, "runserver", f"127.0.0.1:{port}", "--noreload")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return status_of(url + "/admin/login/") == 200 or proc.poll() is not None
        except OSError:
            return proc.poll() is not None

    wait_until(up, timeout=30, interval=0.1)
    assert proc.poll() is None, processes.output(proc)
    return url, proc
