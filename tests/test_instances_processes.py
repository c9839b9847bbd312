"""Blue-green across processes: a real server follows ``pm reload`` and an options change
within a second, and the request inside the old instance completes there.

The server runs the bluegreen test plugin with ``BLUEGREEN_LOG`` set: its instances append
their loads and unloads (with the calls inside at that moment) to a file the test reads.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from django.db import connection

from tests.helpers.processes import manage, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def get_json(url: str, timeout: float = 10) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        assert response.status == 200
        return json.loads(response.read())


def events(log) -> list[tuple[str, int, int]]:
    if not log.exists():
        return []
    return [(event, int(serial), int(inside))
            for _pid, event, serial, inside in (line.split() for line in log.read_text().splitlines())]


@pytest.fixture
def server(live_server_process, subprocess_env, tmp_path):
    """A server with the bluegreen plugin enabled that can learn of a change in time only
    through the sync channel (PostgreSQL: LISTEN/NOTIFY, the periodic checks pushed to 60 s)
    or, on SQLite, by its check of the registry's version every 0.5 s."""
    log = tmp_path / "bluegreen.log"
    assert manage(subprocess_env, "pm", "enable", "bluegreen").returncode == 0
    env = {**subprocess_env, "BLUEGREEN_LOG": str(log)}
    if connection.vendor == "postgresql":
        env.update(TACHYCORE_RECONCILE_INTERVAL="60s", TACHYCORE_STATE_CHECK_INTERVAL="60s")
    else:
        env.update(TACHYCORE_STATE_CHECK_INTERVAL="0.5s")
    url = live_server_process(env)
    assert wait_until(lambda: get_json(f"{url}/api/bluegreen/serial/"), timeout=10)
    return url, log


def test_server__follows_pm_reload_within_a_second_and_its_slow_request_completes_on_the_old_instance(
        server, subprocess_env):
    url, log = server
    first = get_json(f"{url}/api/bluegreen/serial/")["serial"]
    slow: dict = {}
    thread = threading.Thread(target=lambda: slow.update(get_json(f"{url}/api/bluegreen/slow/?seconds=2.5")))
    thread.start()
    time.sleep(0.5)  # the slow request is inside the first instance

    assert manage(subprocess_env, "pm", "reload", "bluegreen").returncode == 0
    reloaded = time.monotonic()

    assert wait_until(lambda: get_json(f"{url}/api/bluegreen/serial/")["serial"] > first, timeout=1.0)
    assert time.monotonic() - reloaded < 1.0
    assert ("unload", first, 0) not in events(log)  # the slow request is still inside it
    thread.join(10)
    assert slow == {"serial": first, "serial_at_start": first, "colour": "blue"}
    assert wait_until(lambda: ("unload", first, 0) in events(log), timeout=5)
    assert [e for e in events(log) if e[0] == "unload" and e[2] != 0] == []


def test_server__follows_an_options_change_within_a_second(server, subprocess_env):
    url, log = server
    first = get_json(f"{url}/api/bluegreen/serial/")

    assert manage(subprocess_env, "pm", "enable", "bluegreen", "--options", '{"colour": "green"}').returncode == 0
    changed = time.monotonic()

    assert wait_until(lambda: get_json(f"{url}/api/bluegreen/serial/")["colour"] == "green", timeout=1.0)
    assert time.monotonic() - changed < 1.0
    assert get_json(f"{url}/api/bluegreen/serial/")["serial"] > first["serial"]
    assert wait_until(lambda: ("unload", first["serial"], 0) in events(log), timeout=5)


def test_server__disable_answers_404_at_once_and_unloads_after_the_slow_request(server, subprocess_env):
    url, log = server
    first = get_json(f"{url}/api/bluegreen/serial/")["serial"]
    slow: dict = {}
    thread = threading.Thread(target=lambda: slow.update(get_json(f"{url}/api/bluegreen/slow/?seconds=2")))
    thread.start()
    time.sleep(0.5)

    assert manage(subprocess_env, "pm", "disable", "bluegreen").returncode == 0

    def gone() -> bool:
        try:
            get_json(f"{url}/api/bluegreen/serial/")
        except urllib.error.HTTPError as e:
            return e.code == 404
        return False

    assert wait_until(gone, timeout=1.0)
    thread.join(10)
    assert slow["serial"] == first
    assert wait_until(lambda: ("unload", first, 0) in events(log), timeout=5)


def test_reload__refused_while_another_process_reports_max_draining_instances(server, subprocess_env):
    url, log = server
    held = []
    for _ in range(3):  # a request held inside each of three instances, each then replaced
        before = get_json(f"{url}/api/bluegreen/serial/")["serial"]
        thread = threading.Thread(target=lambda: get_json(f"{url}/api/bluegreen/hold/", timeout=40))
        thread.start()
        held.append(thread)
        time.sleep(0.3)
        assert manage(subprocess_env, "pm", "reload", "bluegreen").returncode == 0
        assert wait_until(lambda b=before: get_json(f"{url}/api/bluegreen/serial/")["serial"] > b, timeout=2)

    refused = manage(subprocess_env, "pm", "reload", "bluegreen")

    assert refused.returncode == 1
    assert "3 old instance(s) are still draining on web " in refused.stderr
    assert "MAX_DRAINING = 3" in refused.stderr
    (log.parent / (log.name + ".release")).touch()
    for thread in held:
        thread.join(20)
    assert wait_until(lambda: manage(subprocess_env, "pm", "reload", "bluegreen").returncode == 0, timeout=10)
