"""Sync messages: one contract suite over every adapter, reconnects, and ``tachycore.sync``.

Two adapters with different node ids stand for two processes of one site. The
memory adapter delivers in the publishing thread; PostgreSQL and Redis deliver
on each adapter's listener thread, so tests wait (bounded) for what arrives.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import io
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.core import checks
from django.core.management import call_command
from django.db import connection, transaction

from tachycore import plugin_manager, sync
from tachycore.errors import PubSubConfigurationError, SyncMessageError
from tachycore.pubsub import BasePubSub, MemoryPubSub, load_pubsub, resolve_pubsub_config
from tachycore.pubsub.base import MAX_MESSAGE_BYTES, encode
from tachycore.runtime import runtime
from tests.helpers.processes import wait_until

WAIT = 5.0  # seconds: the longest any message or reconnect may take

UNICODE = "héllo wörld ✓ 日本語 😀 \u2028 \"quoted\" \\ back"
NESTED = {
    "text": UNICODE,
    "list": [1, 2.5, -3, None, True, False, "", [], {}],
    "deep": {"a": {"b": {"c": [{"d": UNICODE}]}}},
    "empty": {},
}


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Recorder:
    """The ``on_message``, ``on_reconnect`` and ``on_disconnect`` of one node: keeps what it
    was given (``events``: "disconnect" and "reconnect" in the order they came).

    ``fail_on`` makes ``on_message`` raise for that payload (after recording it),
    ``fail_reconnect`` makes ``on_reconnect`` raise (after counting it).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[tuple[str, Any, str]] = []
        self.reconnects = 0
        self.events: list[str] = []
        self.fail_on: Any = object()
        self.fail_reconnect = False

    def on_message(self, channel: str, payload: Any, origin: str) -> None:
        with self._lock:
            self.messages.append((channel, payload, origin))
        if payload == self.fail_on:
            raise RuntimeError("on_message broke")

    def on_reconnect(self) -> None:
        with self._lock:
            self.reconnects += 1
            self.events.append("reconnect")
        if self.fail_reconnect:
            raise RuntimeError("on_reconnect broke")

    def on_disconnect(self) -> None:
        with self._lock:
            self.events.append("disconnect")

    @property
    def disconnects(self) -> int:
        with self._lock:
            return self.events.count("disconnect")

    def payloads(self) -> list[Any]:
        with self._lock:
            return [payload for _, payload, _ in self.messages]

    def wait_for(self, count: int) -> list[Any]:
        """Wait until ``count`` messages arrived; return the payloads."""
        wait_until(lambda: len(self.payloads()) >= count, timeout=WAIT)
        return self.payloads()


class Node:
    """One adapter with its recorder: a process of the site."""

    def __init__(self, adapter: BasePubSub, recorder: Recorder) -> None:
        self.adapter = adapter
        self.rec = recorder

    @property
    def id(self) -> str:
        return self.adapter.node_id

    def publish(self, channel: str, payload: Any) -> None:
        self.adapter.publish(channel, payload)


# -- the adapters under test --------------------------------------------------------------


class MemoryBackend:
    """Adapters of one process; there is no wire and no connection to lose."""

    def build(self, node_id: str, rec: Recorder) -> BasePubSub:
        return MemoryPubSub(node_id, rec.on_message, rec.on_reconnect)

    def send_raw(self, adapter: BasePubSub, text: str | bytes) -> None:
        pytest.skip("the in-process adapter has no wire to put a malformed message on")

    def kill_listener(self, adapter: BasePubSub) -> None:
        pytest.skip("the in-process adapter has no connection to lose")


class PostgresBackend:
    """LISTEN/NOTIFY on this test run's database (NOTIFY does not cross databases)."""

    def build(self, node_id: str, rec: Recorder) -> BasePubSub:
        from tachycore.pubsub.postgres import PostgresPubSub

        return PostgresPubSub(node_id, rec.on_message, rec.on_reconnect)

    def send_raw(self, adapter: BasePubSub, text: str | bytes) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [adapter.channel, text])

    def kill_listener(self, adapter: BasePubSub) -> None:
        name = f"tachycore-listen {adapter.node_id}"[:63]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                [name],
            )
            killed = [row[0] for row in cursor.fetchall()]
        assert killed == [True], f"expected one listener connection named {name!r}, got {killed}"


class RedisBackend:
    """Redis pub/sub on a channel of this test only (Redis channels span databases)."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.channel = _unique("tachycore-test")
        self.client = redis.Redis.from_url(url)

    def build(self, node_id: str, rec: Recorder) -> BasePubSub:
        from tachycore.pubsub.redis import RedisPubSub

        return RedisPubSub(node_id, rec.on_message, rec.on_reconnect, url=self.url, channel=self.channel)

    def send_raw(self, adapter: BasePubSub, text: str | bytes) -> None:
        self.client.publish(adapter.channel, text)

    def kill_listener(self, adapter: BasePubSub) -> None:
        name = f"tachycore-listen-{adapter.node_id}"
        ids = [client["id"] for client in self.client.client_list() if client.get("name") == name]
        assert len(ids) == 1, f"expected one Redis client named {name!r}, got {ids}"
        assert self.client.client_kill_filter(_id=ids[0]) == 1

    def close(self) -> None:
        self.client.close()


@pytest.fixture(params=[
    "memory",
    # a transactional test: NOTIFY is sent at once, in autocommit, and the listener sees it
    pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.django_db(transaction=True)]),
    "redis",
])
def backend(request):
    if request.param == "memory":
        yield MemoryBackend()
    elif request.param == "postgres":
        yield PostgresBackend()
    else:
        redis_backend = RedisBackend(request.getfixturevalue("redis_url"))
        yield redis_backend
        redis_backend.close()


@pytest.fixture
def make_node(backend) -> Iterator[Callable[..., Node]]:
    """Build, start and wait for a node; every node is stopped after the test."""
    nodes: list[Node] = []

    def make(prefix: str = "node", start: bool = True) -> Node:
        rec = Recorder()
        node = Node(backend.build(_unique(prefix), rec), rec)
        node.adapter.on_disconnect = rec.on_disconnect  # as the runtime does
        nodes.append(node)
        if start:
            node.adapter.start()
            assert node.adapter.wait_listening(WAIT), f"{node.id} is not listening"
        return node

    yield make
    for node in nodes:
        node.adapter.stop()


@pytest.fixture
def pair(make_node) -> tuple[Node, Node]:
    return make_node("a"), make_node("b")


# -- the contract: every adapter -----------------------------------------------------------


def test_pubsub__message_reaches_other_node_intact(pair):
    a, b = pair

    a.publish("notes:changed", NESTED)

    b.rec.wait_for(1)
    assert b.rec.messages == [("notes:changed", NESTED, a.id)]


@pytest.mark.parametrize("payload", [None, 0, "", "plain", UNICODE, [1, "two", None], True])
def test_pubsub__scalar_and_list_payloads_arrive_intact(pair, payload):
    a, b = pair

    a.publish("ch", payload)

    b.rec.wait_for(1)
    assert b.rec.messages == [("ch", payload, a.id)]


def test_pubsub__channel_names_arrive_intact(pair):
    a, b = pair
    channels = ["plugin:notes", "plugin-state-changed", "kv:invalidate", "ünïcode ✓ channel"]

    for channel in channels:
        a.publish(channel, channel)

    b.rec.wait_for(len(channels))
    assert b.rec.messages == [(channel, channel, a.id) for channel in channels]


def test_pubsub__sender_does_not_get_its_own_message(pair):
    a, b = pair

    a.publish("ch", "from a")
    # b's message goes out after a's: once it reaches a, a's own would have arrived
    b.publish("ch", "from b")

    a.rec.wait_for(1)
    b.rec.wait_for(1)
    assert a.rec.messages == [("ch", "from b", b.id)]
    assert b.rec.messages == [("ch", "from a", a.id)]


def test_pubsub__every_other_node_gets_the_message(make_node):
    a, b, c = make_node("a"), make_node("b"), make_node("c")

    a.publish("ch", {"to": "all"})

    assert b.rec.wait_for(1) == [{"to": "all"}]
    assert c.rec.wait_for(1) == [{"to": "all"}]


def test_pubsub__an_idle_listener_gets_each_message_at_once(pair):
    """Delivery does not wait for the listener's receive timeout (1 s): every process
    must follow a change within one second, and a lost second here would eat it."""
    a, b = pair
    for seq in range(3):
        a.publish("ch", seq)
        assert wait_until(lambda n=seq + 1: len(b.rec.payloads()) >= n, timeout=0.5), f"message {seq} late"


def test_pubsub__messages_arrive_in_order(pair):
    a, b = pair
    count = 50

    for seq in range(count):
        a.publish("ch", {"seq": seq})

    assert b.rec.wait_for(count) == [{"seq": seq} for seq in range(count)]


def test_pubsub__stopped_node_gets_nothing_more(make_node):
    a, b, witness = make_node("a"), make_node("b"), make_node("witness")
    a.publish("ch", "before stop")
    assert b.rec.wait_for(1) == ["before stop"]
    assert witness.rec.wait_for(1) == ["before stop"]

    b.adapter.stop()
    a.publish("ch", "after stop")

    assert witness.rec.wait_for(2) == ["before stop", "after stop"]
    assert b.rec.payloads() == ["before stop"]
    assert not b.adapter.listening


def test_pubsub__listening_reflects_state(make_node):
    node = make_node("a", start=False)
    assert node.adapter.listening is False

    node.adapter.start()
    assert node.adapter.wait_listening(WAIT) is True
    assert node.adapter.listening is True

    node.adapter.stop()
    assert node.adapter.listening is False


def test_pubsub__stop_before_start_is_harmless(make_node):
    node = make_node("a", start=False)

    node.adapter.stop()

    assert node.adapter.listening is False


def _cyclic() -> list:
    cycle: list = []
    cycle.append(cycle)
    return cycle


@pytest.mark.parametrize("payload", [
    pytest.param(object(), id="object"),
    pytest.param({"at": datetime.datetime(2024, 1, 1)}, id="datetime"),
    pytest.param({"tags": {1, 2}}, id="set"),
    pytest.param(_cyclic(), id="cycle"),
    pytest.param("x" * MAX_MESSAGE_BYTES, id="over-size"),
    pytest.param({"blob": "é" * (MAX_MESSAGE_BYTES // 2)}, id="over-size-unicode"),
])
def test_pubsub__bad_payload_is_refused_and_nothing_is_sent(pair, payload):
    a, b = pair

    with pytest.raises(SyncMessageError) as excinfo:
        a.publish("sync-test:bad", payload)
    assert "sync-test:bad" in str(excinfo.value)

    # a later message arrives alone: the refused one never went out before it
    a.publish("sync-test:bad", "marker")
    assert b.rec.wait_for(1) == ["marker"]


def test_pubsub__message_at_the_size_limit_is_delivered(pair):
    a, b = pair
    overhead = len(encode("ch", "", a.id).encode())
    payload = "x" * (MAX_MESSAGE_BYTES - overhead)
    assert len(encode("ch", payload, a.id).encode()) == MAX_MESSAGE_BYTES

    a.publish("ch", payload)
    with pytest.raises(SyncMessageError):
        a.publish("ch", payload + "x")

    assert b.rec.wait_for(1) == [payload]


MALFORMED = [
    "garbage",
    "",
    "null",
    "[1, 2]",
    '"just a string"',
    '{"c": "ch", "p": 1}',  # no origin
    '{"o": "someone", "p": 1}',  # no channel
    '{"c": "ch", "o": "someone", "p": ',  # cut short
]


def test_pubsub__malformed_messages_are_ignored(pair, backend):
    a, b = pair

    for text in MALFORMED:
        backend.send_raw(b.adapter, text)
    a.publish("ch", "after garbage")

    b.rec.wait_for(1)
    assert b.rec.messages == [("ch", "after garbage", a.id)]
    assert b.adapter.listening
    assert b.rec.reconnects == 0
    assert a.rec.messages == []


def test_pubsub__failing_on_message_does_not_stop_the_listener(pair):
    a, b = pair
    b.rec.fail_on = "boom"

    a.publish("ch", "boom")
    a.publish("ch", "after boom")

    assert b.rec.wait_for(2) == ["boom", "after boom"]
    assert b.adapter.listening
    assert b.rec.reconnects == 0


def test_pubsub__listener_reconnects_after_losing_its_connection(pair, backend):
    a, b = pair
    a.publish("ch", "before")
    assert b.rec.wait_for(1) == ["before"]

    backend.kill_listener(b.adapter)

    assert wait_until(lambda: b.rec.reconnects >= 1, timeout=WAIT), "on_reconnect was not called"
    assert b.adapter.wait_listening(WAIT)
    a.publish("ch", "after")
    assert b.rec.wait_for(2) == ["before", "after"]
    assert b.rec.reconnects == 1
    assert a.rec.reconnects == 0
    # the other direction works too: b's publishing is not affected
    b.publish("ch", "from b")
    assert a.rec.wait_for(1) == ["from b"]


def test_pubsub__failing_on_reconnect_does_not_stop_the_listener(pair, backend):
    a, b = pair
    b.rec.fail_reconnect = True

    backend.kill_listener(b.adapter)

    assert wait_until(lambda: b.rec.reconnects >= 1, timeout=WAIT), "on_reconnect was not called"
    assert b.adapter.wait_listening(WAIT)
    a.publish("ch", "after")
    assert b.rec.wait_for(1) == ["after"]


def test_pubsub__node_reconnects_again_after_a_second_loss(pair, backend):
    a, b = pair

    for expected in (1, 2):
        backend.kill_listener(b.adapter)
        assert wait_until(lambda n=expected: b.rec.reconnects >= n, timeout=WAIT)
        assert b.adapter.wait_listening(WAIT)

    a.publish("ch", "after two losses")
    assert b.rec.wait_for(1) == ["after two losses"]
    assert b.rec.reconnects == 2


def test_pubsub__lost_connection_is_reported_at_once_then_the_reconnect(pair, backend):
    a, b = pair

    backend.kill_listener(b.adapter)

    assert wait_until(lambda: b.rec.reconnects >= 1, timeout=WAIT), "on_reconnect was not called"
    assert b.rec.events == ["disconnect", "reconnect"]
    assert a.rec.events == []


def test_pubsub__idle_listener_stays_live_on_answered_keepalives(make_node, backend, monkeypatch):
    if isinstance(backend, MemoryBackend):
        pytest.skip("the in-process adapter has no server to ask")
    node = make_node("idle")
    answers: list[float] = []
    heard = node.adapter._heard
    monkeypatch.setattr(node.adapter, "_heard", lambda: (answers.append(time.monotonic()), heard()))

    time.sleep(2 * node.adapter.stall_after)  # no message meanwhile: only keepalives are heard

    assert len(answers) >= node.adapter.stall_after / node.adapter.keepalive_interval
    assert node.adapter.listening
    assert node.rec.events == []


class QuietServer(BasePubSub):
    """A listener on a pretend server that answers keepalives while ``answering`` (else it is
    a partition: the socket stays open and silent); ``stuck`` blocks the listener thread in
    its receive until ``unstuck`` (a thread hung on a dead socket or in a handler)."""

    keepalive_interval = 0.05
    stall_after = 0.3

    def __init__(self, rec: Recorder) -> None:
        super().__init__(_unique("quiet"), rec.on_message, rec.on_reconnect)
        self.rec = rec
        self.on_disconnect = rec.on_disconnect
        self.answering = True
        self.stuck = threading.Event()
        self.unstuck = threading.Event()

    def publish(self, channel: str, payload: Any) -> None:
        pass

    def _connect(self) -> None:
        if not self.answering:
            raise ConnectionError("no route to host")

    def _receive(self, timeout: float) -> list[str]:
        if self.stuck.is_set():
            self.unstuck.wait(WAIT)
        time.sleep(timeout)
        return []

    def _ping(self) -> None:
        if self.answering:
            self._heard()


#: how long a quiet listener may pass for live: stall_after, then the watchdog's next look
QUIET_BOUND = QuietServer.stall_after + QuietServer.keepalive_interval / 2 + 0.2  # 0.2: scheduling


@pytest.fixture
def quiet() -> Iterator[QuietServer]:
    adapter = QuietServer(Recorder())
    adapter.start()
    assert adapter.wait_listening(WAIT)
    yield adapter
    adapter.unstuck.set()
    adapter.stop()


def test_liveness__listener_of_a_silent_server_is_lost_within_stall_after(quiet):
    time.sleep(3 * quiet.stall_after)
    assert quiet.listening, "a listener whose keepalives are answered is live"

    quiet.answering = False
    went_silent = time.monotonic()

    assert wait_until(lambda: quiet.rec.disconnects, timeout=WAIT)
    assert time.monotonic() - went_silent < QUIET_BOUND
    assert not quiet.listening


def test_liveness__listener_thread_stuck_in_a_receive_is_lost_within_stall_after(quiet):
    quiet.stuck.set()
    stuck = time.monotonic()

    assert wait_until(lambda: quiet.rec.disconnects, timeout=WAIT)
    assert time.monotonic() - stuck < QUIET_BOUND + quiet.keepalive_interval  # the round it was in
    assert not quiet.listening


def test_liveness__lost_listener_reconnects_and_is_live_again(quiet):
    rec = quiet.rec
    quiet.answering = False
    assert wait_until(lambda: rec.disconnects, timeout=WAIT)

    quiet.answering = True

    assert wait_until(lambda: rec.reconnects, timeout=WAIT)
    assert quiet.wait_listening(WAIT)
    assert rec.events == ["disconnect", "reconnect"]


def test_redis_pubsub__undecodable_message_is_ignored_without_reconnecting(redis_url):
    """Bytes that are not UTF-8 on the channel are a malformed message, not a lost
    connection: the listener stays connected and the next message is not lost."""
    backend = RedisBackend(redis_url)
    nodes = []
    try:
        for prefix in ("a", "b"):
            rec = Recorder()
            nodes.append(Node(backend.build(_unique(prefix), rec), rec))
            nodes[-1].adapter.start()
            assert nodes[-1].adapter.wait_listening(WAIT)
        a, b = nodes

        backend.send_raw(b.adapter, b"\xff\xfe not utf-8")
        a.publish("ch", "after garbage")

        assert b.rec.wait_for(1) == ["after garbage"]
        assert b.rec.reconnects == 0
    finally:
        for node in nodes:
            node.adapter.stop()
        backend.close()


# -- tachycore.sync over the runtime's adapter ---------------------------------------------


@pytest.fixture
def local(settings, transactional_db) -> Iterator[BasePubSub]:
    """This process's adapter (the runtime's), in memory and listening."""
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "tachycore.pubsub.memory.MemoryPubSub"}
    runtime.reset_pubsub()
    adapter = runtime.pubsub
    assert isinstance(adapter, MemoryPubSub)
    adapter.start()
    yield adapter
    adapter.stop()


@pytest.fixture
def other(local) -> Iterator[Node]:
    """Another process of the site."""
    rec = Recorder()
    node = Node(MemoryPubSub(_unique("other"), rec.on_message, rec.on_reconnect), rec)
    node.adapter.start()
    yield node
    node.adapter.stop()


def test_publish__outside_a_transaction_is_delivered_at_once(local, other):
    sync.publish("ch", NESTED)

    assert other.rec.messages == [("ch", NESTED, runtime.node_id)]


def test_publish__waits_for_commit(local, other):
    with transaction.atomic():
        sync.publish("ch", {"n": 1})
        sync.publish("ch", {"n": 2})
        assert other.rec.messages == []

    assert other.rec.payloads() == [{"n": 1}, {"n": 2}]


def test_publish__rolled_back_transaction_sends_nothing(local, other):
    with contextlib.suppress(RuntimeError), transaction.atomic():
        sync.publish("ch", "rolled back")
        raise RuntimeError("abort")

    sync.publish("ch", "marker")
    assert other.rec.payloads() == ["marker"]


def test_publish__rolled_back_savepoint_drops_only_its_messages(local, other):
    with transaction.atomic():
        sync.publish("ch", "kept")
        with contextlib.suppress(RuntimeError), transaction.atomic():
            sync.publish("ch", "dropped")
            raise RuntimeError("abort the savepoint")
        assert other.rec.messages == []

    assert other.rec.payloads() == ["kept"]


@pytest.mark.parametrize("payload", [
    pytest.param(object(), id="not-json"),
    pytest.param("x" * MAX_MESSAGE_BYTES, id="over-size"),
])
def test_publish__bad_payload_raises_at_the_call(local, other, payload):
    with transaction.atomic():
        with pytest.raises(SyncMessageError) as excinfo:
            sync.publish("sync-test:bad", payload)
        assert "sync-test:bad" in str(excinfo.value)
        sync.publish("ch", "good")  # the transaction goes on

    assert other.rec.payloads() == ["good"]


def test_publish__local_subscribers_do_not_get_this_process_messages(local, other):
    got = []
    sync.subscribe("ch", got.append)

    sync.publish("ch", "mine")

    assert other.rec.payloads() == ["mine"]
    assert got == []


def test_subscribe__message_from_another_node_reaches_callback(local, other):
    got = []
    sync.subscribe("ch", got.append)

    other.publish("ch", NESTED)
    other.publish("elsewhere", "not for ch")

    assert got == [NESTED]


def test_subscribe__same_callback_twice_is_called_once(local, other):
    got = []
    sync.subscribe("ch", got.append)
    sync.subscribe("ch", got.append)

    other.publish("ch", 1)

    assert got == [1]


def test_unsubscribe__stops_delivery(local, other):
    got, witness = [], []
    sync.subscribe("ch", got.append)
    sync.subscribe("ch", witness.append)
    other.publish("ch", "first")

    sync.unsubscribe("ch", got.append)
    other.publish("ch", "second")

    assert got == ["first"]
    assert witness == ["first", "second"]


def test_subscribe__failing_callback_does_not_stop_the_others(local, other, monkeypatch):
    monkeypatch.setattr(runtime.supervisor, "errors", collections.deque(maxlen=10))
    got = []

    def broken(payload):
        raise RuntimeError("subscriber broke")

    sync.subscribe("ch", broken)
    sync.subscribe("ch", got.append)

    other.publish("ch", "one")
    other.publish("ch", "two")

    assert got == ["one", "two"]
    assert local.listening
    assert any("subscriber broke" in error["message"] for error in runtime.supervisor.errors)


@pytest.fixture
def plugin_calls(monkeypatch) -> dict[str, list]:
    """What each demo plugin's ``handle_sync_message`` was given."""
    calls: dict[str, list] = {"notes": [], "audit": []}
    for name, got in calls.items():
        # on the class: each enable or reload makes a new instance
        monkeypatch.setattr(type(plugin_manager.plugins[name]), "handle_sync_message",
                            lambda self, message, got=got: got.append(message))
    return calls


def test_subscribe__plugin_channel_reaches_enabled_plugin(local, other, plugin_calls):
    call_command("pm", "enable", "notes", stdout=io.StringIO())
    assert plugin_manager.is_enabled("notes")

    other.publish("plugin:notes", {"note": 7, "text": UNICODE})

    assert plugin_calls == {"notes": [{"note": 7, "text": UNICODE}], "audit": []}


def test_subscribe__plugin_channel_skips_disabled_plugin(local, other, plugin_calls):
    call_command("pm", "enable", "notes", stdout=io.StringIO())
    call_command("pm", "disable", "notes", stdout=io.StringIO())
    assert not plugin_manager.is_enabled("notes")
    assert plugin_manager.is_enabled("audit")

    other.publish("plugin:notes", "to a disabled plugin")
    other.publish("plugin:audit", "to an enabled plugin")

    assert plugin_calls == {"notes": [], "audit": ["to an enabled plugin"]}


def test_subscribe__plugin_channel_skips_never_enabled_plugin(local, other, plugin_calls):
    other.publish("plugin:notes", "nobody home")

    assert plugin_calls == {"notes": [], "audit": []}


def test_subscribe__plugin_state_change_is_announced_to_other_nodes(local, other):
    call_command("pm", "enable", "audit", stdout=io.StringIO())

    assert [channel for channel, _, _ in other.rec.messages] == ["plugin-state-changed"]


# -- choosing the adapter --------------------------------------------------------------------


@pytest.mark.postgres
def test_resolve_pubsub_config__auto_is_postgres_on_postgresql(settings):
    assert resolve_pubsub_config("auto") == ("tachycore.pubsub.postgres.PostgresPubSub", {})

    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "auto"}
    runtime.reset_pubsub()
    from tachycore.pubsub.postgres import PostgresPubSub

    assert type(runtime.pubsub) is PostgresPubSub


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite default")
def test_resolve_pubsub_config__auto_is_memory_on_sqlite(settings):
    assert resolve_pubsub_config("auto") == ("tachycore.pubsub.memory.MemoryPubSub", {})

    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "auto"}
    runtime.reset_pubsub()
    assert type(runtime.pubsub) is MemoryPubSub


def test_resolve_pubsub_config__default_setting_is_auto(settings):
    settings.TACHYCORE = {key: value for key, value in settings.TACHYCORE.items() if key != "PUBSUB"}
    runtime.reset_pubsub()

    expected = resolve_pubsub_config("auto")[0].rsplit(".", 1)[1]
    assert type(runtime.pubsub).__name__ == expected


def test_load_pubsub__dict_options_reach_the_adapter(redis_url):
    adapter = load_pubsub(
        {"BACKEND": "tachycore.pubsub.redis.RedisPubSub", "OPTIONS": {"URL": redis_url, "CHANNEL": "c1"}},
        "node-x", Recorder().on_message, Recorder().on_reconnect,
    )

    assert (type(adapter).__name__, adapter.url, adapter.channel, adapter.node_id) == (
        "RedisPubSub", redis_url, "c1", "node-x")


@pytest.mark.parametrize("path", [
    "tachycore.pubsub.nowhere.NowherePubSub",
    "tachycore.pubsub.memory.NoSuchPubSub",
    "nopackage_at_all.PubSub",
])
def test_load_pubsub__bad_dotted_path_names_it(path):
    with pytest.raises(PubSubConfigurationError) as excinfo:
        load_pubsub(path, "node-x", Recorder().on_message, Recorder().on_reconnect)

    assert path in str(excinfo.value)
    assert 'TACHYCORE["PUBSUB"]' in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, ImportError)


def test_load_pubsub__class_that_is_no_adapter_is_refused():
    with pytest.raises(PubSubConfigurationError, match="collections.OrderedDict"):
        load_pubsub("collections.OrderedDict", "node-x", Recorder().on_message, Recorder().on_reconnect)


def test_load_pubsub__unknown_option_names_the_backend():
    config = {"BACKEND": "tachycore.pubsub.memory.MemoryPubSub", "OPTIONS": {"BOGUS": 1}}

    with pytest.raises(PubSubConfigurationError, match="tachycore.pubsub.memory.MemoryPubSub"):
        load_pubsub(config, "node-x", Recorder().on_message, Recorder().on_reconnect)


def test_runtime__bad_pubsub_setting_raises_naming_it(settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "tachycore.pubsub.nowhere.NowherePubSub"}
    runtime.reset_pubsub()

    with pytest.raises(PubSubConfigurationError, match="tachycore.pubsub.nowhere.NowherePubSub"):
        runtime.pubsub  # noqa: B018


def test_check__bad_pubsub_setting_is_a_system_check_error(settings):
    """A bad adapter path fails ``manage.py check`` at start, not the first request later."""
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "tachycore.pubsub.nowhere.NowherePubSub"}

    errors = [message for message in checks.run_checks(tags=["tachycore"])
              if message.level >= checks.ERROR]

    assert any("PUBSUB" in message.msg and "tachycore.pubsub.nowhere.NowherePubSub" in message.msg
               for message in errors), errors
