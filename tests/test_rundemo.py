"""``manage.py rundemo`` (``make run``): web server, runjobs and qcluster together, stopped together."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from demo.processes import GRACE, Child, ChildDied, ProcessGroup
from tachycore.models import Node
from tests.helpers.processes import ROOT, free_port, wait_until


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every live process (zombies left out)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:  # exited meanwhile
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            table[int(entry.name)] = (int(ppid), cmdline)
    return table


def descendants(pid: int) -> dict[int, str]:
    """pid -> command line of every live process below ``pid``."""
    table = process_table()
    found: dict[int, str] = {}
    parents = {pid}
    while parents:
        children = {child for child, (ppid, _) in table.items() if ppid in parents and child not in found}
        found.update({child: table[child][1] for child in children})
        parents = children
    return found


def marked(mark: str) -> set[int]:
    """The live processes whose environment holds ``RUNDEMO_TEST_MARK=<mark>`` (inherited
    from the rundemo of one test, so orphans count too)."""
    needle = f"RUNDEMO_TEST_MARK={mark}".encode()
    found = set()
    for pid in process_table():
        try:
            if needle in (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0"):
                found.add(pid)
        except OSError:
            continue
    return found


def child_running(proc: subprocess.Popen, command: str) -> int | None:
    """The pid of the direct child of ``proc`` that runs ``manage.py <command>``."""
    table = process_table()
    for pid, (ppid, cmdline) in table.items():
        if ppid == proc.pid and cmdline.split()[2:3] == [command]:
            return pid
    return None


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "held"
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def mark(subprocess_env) -> str:
    """A mark in the environment of the processes this test starts."""
    value = uuid.uuid4().hex
    subprocess_env["RUNDEMO_TEST_MARK"] = value
    yield value
    for pid in marked(value):  # whatever a failed test left behind
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def rundemo(subprocess_env, mark):
    """``start(*args) -> (Popen, base url)``: ``manage.py rundemo`` on a free port; killed after."""
    started: list[subprocess.Popen] = []

    def start(*args: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "rundemo", f"127.0.0.1:{port}", *args],
                                env=subprocess_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        up = wait_until(lambda: proc.poll() is not None or answers_200(url + "/admin/login/"), timeout=60,
                        interval=0.2)
        assert up and proc.poll() is None, proc.communicate(timeout=30)
        return proc, url

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def started_three(proc: subprocess.Popen) -> dict[str, int]:
    """Wait for the three children (and runjobs' live dispatcher node); return their pids."""
    def three() -> dict[str, int] | None:
        pids = {name: child_running(proc, name) for name in ("runserver", "runjobs", "qcluster")}
        return pids if all(pids.values()) else None

    pids = wait_until(three, timeout=30, interval=0.2)
    assert pids, descendants(proc.pid)
    assert wait_until(lambda: Node.objects.filter(kind="dispatcher", pid=pids["runjobs"],
                                                  status="running").exists(), timeout=30, interval=0.2)
    return pids


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_rundemo__serves_runs_runjobs_and_qcluster_and_a_signal_stops_all_three(rundemo, mark, signum):
    proc, url = rundemo()
    pids = started_three(proc)
    below = descendants(proc.pid)
    assert len(below) >= 5  # the three, runserver's autoreloaded server, qcluster's sentinel and workers
    assert set(below) <= marked(mark)
    assert answers_200(url + "/admin/login/")

    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 0, stdout + stderr
    assert not marked(mark), "a process of the group outlived rundemo"
    lines = stdout.splitlines()
    assert lines[-1] == "rundemo: stopped"
    assert any(line.startswith("runjobs  | runjobs ") and "stopped; 0 completed" in line for line in lines)
    assert any(line.startswith("qcluster | ") and "has stopped" in line for line in lines)
    assert any(line.startswith("web      | ") for line in lines)
    assert "Traceback" not in stdout + stderr
    assert not Node.objects.filter(pid=pids["runjobs"], status="running").exists()
    assert not answers_200(url + "/admin/login/")


@pytest.mark.django_db(transaction=True)
def test_rundemo__with_jobs_disabled_serves_without_runjobs(rundemo, subprocess_env):
    subprocess_env["JOBS_DISABLED"] = "true"
    proc, url = rundemo()
    assert wait_until(lambda: child_running(proc, "qcluster"), timeout=30, interval=0.2)
    time.sleep(1)  # runjobs, had it been started, would have exited by now and stopped the rest

    assert proc.poll() is None and child_running(proc, "runjobs") is None
    assert answers_200(url + "/admin/login/")
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "with qcluster;" in stdout.splitlines()[0]


@pytest.mark.django_db(transaction=True)
def test_rundemo__when_one_child_dies_the_others_are_stopped_and_it_exits_1(rundemo, mark):
    proc, url = rundemo("--noreload")
    pids = started_three(proc)

    os.kill(pids["runjobs"], signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=60)

    assert proc.returncode == 1
    assert stderr.splitlines() == [f"CommandError: runjobs exited with status -{signal.SIGKILL.value}"]
    assert "runjobs exited with status -9; stopping the others" in stdout
    assert not marked(mark), "a process of the group outlived rundemo"
    assert not answers_200(url + "/admin/login/")


@pytest.mark.django_db(transaction=True)
def test_rundemo__a_web_server_that_cannot_start_stops_the_others_and_exits_1(subprocess_env, mark):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "rundemo", f"127.0.0.1:{port}",
                                 "--noreload"], env=subprocess_env, cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    assert proc.returncode == 1
    assert stderr.splitlines() == ["CommandError: web exited with status 1"], stderr
    assert "That port is already in use" in stdout
    assert not marked(mark), "a process of the group outlived rundemo"


#: every process below rundemo is gone this soon after it is told to stop or dies: each
#: child stops within about 2 s; one that does not is killed after GRACE seconds
STOP_WITHIN = GRACE + 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGHUP", "SIGKILL", "SIGTERM", "SIGINT"])
def test_rundemo__a_signal_or_its_death_leaves_no_process_behind_and_frees_the_port(rundemo, mark, signum):
    proc, url = rundemo()
    pids = started_three(proc)
    # qcluster's sentinel has started its workers: the whole tree is there to be stopped
    assert wait_until(lambda: len(descendants(pids["qcluster"])) >= 3, timeout=30, interval=0.2)
    below = descendants(proc.pid)
    port = int(url.rsplit(":", 1)[1])

    started = time.monotonic()
    proc.send_signal(signum)
    proc.communicate(timeout=STOP_WITHIN)  # the mark fixture kills what is left if this fails
    gone = wait_until(lambda: not marked(mark), timeout=STOP_WITHIN - (time.monotonic() - started))

    left = {pid: cmdline for pid, (_, cmdline) in process_table().items() if pid in below}
    assert gone and not left, f"left behind {time.monotonic() - started:.1f}s after {signum.name}: {left}"
    assert proc.returncode == (-signal.SIGKILL if signum == signal.SIGKILL else 0)
    assert port_is_free(port)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def stop_when_ready(group: ProcessGroup, out: io.StringIO) -> None:
    """In a thread: ``group.stop()`` once a child printed "ready" (or after 30 s, so a
    failing test does not hang); ``run()`` needs the main thread for its signal handlers."""
    def stop() -> None:
        wait_until(lambda: "ready" in out.getvalue(), timeout=30)
        group.stop()

    threading.Thread(target=stop, daemon=True).start()


def test_process_group__a_child_that_loses_the_signal_is_told_again():
    # like qcluster when the signal comes while it starts its sentinel
    deaf_once = python("import signal, sys, time\n"
                       "told = []\n"
                       "def handle(signum, frame):\n"
                       "    told.append(signum)\n"
                       "    if len(told) == 2: print('told twice'); sys.exit(0)\n"
                       "signal.signal(signal.SIGTERM, handle)\n"
                       "print('ready')\n"
                       "while True: time.sleep(0.05)\n")
    out = io.StringIO()
    group = ProcessGroup([Child("deaf-once", deaf_once, repeat=True)], grace=10, out=out)
    stop_when_ready(group, out)

    started = time.monotonic()
    group.run()

    assert "deaf-once | told twice" in out.getvalue()
    assert time.monotonic() - started < 5


def test_process_group__a_child_that_ignores_the_signal_is_killed_with_its_group_and_the_first_death_stays_the_cause(
        tmp_path):
    ready, writing = tmp_path / "grandchild.pid", tmp_path / "grandchild.tmp"
    # it and its grandchild ignore SIGTERM (SIG_IGN is inherited)
    deaf = python("import os, signal, subprocess, time\n"
                  "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                  "grandchild = subprocess.Popen(['sleep', '60'])\n"
                  f"with open({str(writing)!r}, 'w') as f: f.write(str(grandchild.pid))\n"
                  f"os.rename({str(writing)!r}, {str(ready)!r})\n"
                  "time.sleep(60)\n")
    dies = python("import os, sys, time\n"
                  f"while not os.path.exists({str(ready)!r}): time.sleep(0.02)\n"
                  "sys.exit(3)\n")
    out = io.StringIO()
    group = ProcessGroup([Child("deaf", deaf), Child("dies", dies)], grace=1, out=out)
    try:
        with pytest.raises(ChildDied) as raised:
            group.run()

        assert str(raised.value) == "dies exited with status 3"
        assert "dies exited with status 3; stopping the others" in out.getvalue()
        assert "deaf did not stop within 1s of SIGTERM: killed" in out.getvalue()
        assert int(ready.read_text()) not in process_table()
    finally:
        if ready.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(ready.read_text()), signal.SIGKILL)
