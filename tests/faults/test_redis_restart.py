"""Redis restarted under the Redis sync adapter: two web processes follow plugin state and kv
writes within a second once it is back, a change made while it was down reaches them, and
no process serves a kv value from L1 that it can no longer hear invalidated."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers.fault_site import DATABASE, site_env, start_web
from tests.helpers.faults import get_json, put_json
from tests.helpers.http import status_of
from tests.helpers.processes import manage, wait_until

pytestmark = pytest.mark.faults

KEY = "faults:value"


@pytest.fixture
def redis_site(private_postgres, private_redis, site_processes):
    """Two web processes whose sync messages go through the test's own Redis."""
    cluster = private_postgres()
    pubsub = {"BACKEND": "tachycore.pubsub.redis.RedisPubSub", "OPTIONS": {"URL": private_redis.url}}
    env = site_env(cluster.url(DATABASE), TACHYCORE_PUBSUB=json.dumps(pubsub),
                   # no periodic reconcile to hide a lost message; L1 entries that would outlive the test
                   TACHYCORE_RECONCILE_INTERVAL="60s", KV_L1_TTL="60s",
                   KV_HTTP_ENABLED="true", KV_READ_PERMISSION_CLASSES="rest_framework.permissions.AllowAny",
                   KV_WRITE_PERMISSION_CLASSES="rest_framework.permissions.AllowAny")
    assert manage(env, "pm", "enable", "notes").returncode == 0
    servers = [start_web(site_processes, env)[0] for _ in range(2)]
    assert set_value(servers[0], 1) == 200
    # both have the value in L1, and the plugin enabled
    assert wait_until(lambda: all(value_in(s) == 1 for s in servers) and notes_answer(servers, 200), 5)
    return env, servers


def set_value(server: str, value: int) -> int:
    return put_json(f"{server}/api/kv/keys/{KEY}/", {"value": value})[0]


def value_in(server: str) -> object:
    code, body = get_json(f"{server}/api/kv/keys/{KEY}/")
    return body["value"] if code == 200 else (code, body)


def notes_answer(servers: list[str], code: int) -> bool:
    return all(status_of(s + "/api/notes/") == code for s in servers)


def seconds_until(predicate, timeout: float) -> float | None:
    began = time.monotonic()
    return time.monotonic() - began if wait_until(predicate, timeout, interval=0.02) else None


def test_redis_restart__changes_reach_both_processes_within_a_second_once_it_is_back(redis_site, private_redis):
    env, servers = redis_site
    private_redis.stop()
    time.sleep(1)
    # made while Redis is down: the database has them, no message goes out
    assert set_value(servers[0], 2) == 200
    assert manage(env, "pm", "disable", "notes").returncode == 0
    time.sleep(3)

    private_redis.start()
    reconciled = {
        "kv": seconds_until(lambda: all(value_in(s) == 2 for s in servers), 10),
        "plugin": seconds_until(lambda: notes_answer(servers, 404), 10),
    }
    assert set_value(servers[1], 3) == 200
    assert manage(env, "pm", "enable", "notes").returncode == 0
    after = {
        "kv": seconds_until(lambda: all(value_in(s) == 3 for s in servers), 10),
        "plugin": seconds_until(lambda: notes_answer(servers, 200), 10),
    }
    print({"made while down, seen after it is back (s)": reconciled, "made after (s)": after})
    assert all(t is not None and t <= 1.0 for t in reconciled.values()), reconciled
    assert all(t is not None and t <= 1.0 for t in after.values()), after


def test_redis_down__no_stale_kv_value_is_served(redis_site, private_redis):
    env, servers = redis_site
    private_redis.stop()
    time.sleep(0.5)
    assert set_value(servers[0], 2) == 200
    # the other process cannot hear the invalidation: it must read the database, not its L1
    answers = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        answers.append(value_in(servers[1]))
        time.sleep(0.05)
    stale = sum(1 for value in answers if value == 1)
    print({"answers": len(answers), "stale": stale, "first fresh after (s)":
           next((i * 0.05 for i, value in enumerate(answers) if value == 2), None)})
    assert stale == 0, f"{stale} of {len(answers)} reads in 3 s served the old value"
