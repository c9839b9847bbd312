"""Helpers for tests that start real processes: manage.py commands, servers, processes that start together."""

from __future__ import annotations

import select
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: the project's root, where manage.py is
ROOT = Path(__file__).resolve().parent.parent.parent


def manage(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``manage.py`` in a new process; return the finished process with text output."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """Call ``predicate`` until it returns a true value; return it, or the last value at timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def start_server(env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    """Start ``manage.py runserver`` on a free port; return its base URL and process once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", f"127.0.0.1:{port}", "--noreload"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(url + "/admin/login/", timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None

    wait_until(up, timeout=30, interval=0.1)
    if proc.poll() is not None:
        raise RuntimeError(f"runserver exited: {proc.stderr.read().decode()}")
    return url, proc


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()


def run_together(procs: list[subprocess.Popen], timeout: float = 120) -> list[tuple[str, str]]:
    """Let processes that print "ready" and wait for "go" on stdin start at the same moment,
    so that their work overlaps; return each one's ``(stdout, stderr)``. They are killed on failure."""
    try:
        deadline = time.monotonic() + 30
        for proc in procs:
            ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            assert ready, "a process did not start within 30 s"
            line = proc.stdout.readline().strip()
            assert line == "ready", f"{line!r} {proc.stderr.read() if proc.poll() is not None else ''}"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        return [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
