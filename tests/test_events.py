"""Events: handlers in order, as their plugin, inside its instance, while it is enabled; a
raising handler; subscriptions of an instance's load() across reloads and disables;
broadcast to another real process, after commit only.

The toolbox plugin (built in) subscribes to ``toolbox.ping`` in its ``load()`` and notes what
it heard in ``tests.plugin_apps.toolbox.plugin.HEARD``. Tests of a plugin being disabled use
a manager of their own (toolbox cannot be disabled), or, across processes, the herald plugin,
which only the processes these tests start know (tests/helpers/events_node.py).
"""

from __future__ import annotations

import json
import logging
import queue
import subprocess
import sys
import threading
import time
import uuid

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction

from tachycore import events, plugin_manager, trace
from tachycore.context import acting_as, current_plugin
from tachycore.errors import EventError
from tachycore.events import subscribing
from tachycore.manager import PluginManager
from tachycore.plugins import Plugin
from tachycore.pubsub import MemoryPubSub
from tachycore.pubsub.base import MAX_MESSAGE_BYTES
from tachycore.registry import MemoryRegistry
from tachycore.runtime import runtime
from tests.helpers.processes import ROOT, manage, wait_until
from tests.plugin_apps.toolbox.plugin import HEARD


@pytest.fixture(autouse=True)
def _subscriptions_restored():
    """What a test subscribed goes after it (what an instance's load() subscribed goes when
    the instances are forgotten, between tests)."""
    before = dict(subscribing.by_name)
    HEARD.clear()
    yield
    HEARD.clear()
    with subscribing._lock:
        subscribing.by_name.clear()
        subscribing.by_name.update(before)


def loaded_toolbox() -> Plugin:
    """The site's toolbox instance in this process, loaded (it subscribed in load())."""
    plugin_manager.refresh()
    return plugin_manager.instances.active("toolbox").plugin


# -- in this process ------------------------------------------------------------------------


@pytest.mark.django_db
def test_publish__runs_the_handlers_in_the_order_they_subscribed_each_as_its_plugin():
    loaded_toolbox()  # toolbox's own handler comes first: its load() subscribed it
    ran = []
    events.subscribe("toolbox.ping", lambda event: ran.append(("host", current_plugin())))
    events.subscribe("toolbox.ping", lambda event: ran.append(("toolbox's", current_plugin())), plugin="toolbox")
    events.subscribe("toolbox.ping", lambda event: ran.append(("host again", current_plugin())))

    with acting_as("notes"):  # whoever publishes, each handler runs as its own plugin
        assert events.publish("toolbox.ping", {"n": 1}) == 4

    assert [heard["plugin"] for heard in HEARD] == ["toolbox"]
    assert ran == [("host", None), ("toolbox's", "toolbox"), ("host again", None)]


@pytest.mark.django_db
def test_publish__a_plugins_handler_runs_inside_its_active_instance_in_the_publishers_trace():
    toolbox = loaded_toolbox()

    with acting_as("notes"), trace.span("request"):
        events.publish("toolbox.ping", {"n": 1})
        trace_id = trace.current_trace_id()

    [heard] = HEARD
    assert heard["instance"] is toolbox and heard["inside"] is True
    assert (heard["payload"], heard["publisher"]) == ({"n": 1}, "notes")
    assert heard["trace_id"] == trace_id
    assert plugin_manager.instances.active("toolbox").calls == 0  # given back


@pytest.mark.django_db
def test_publish__a_raising_handler_is_logged_and_recorded_on_the_node_and_the_others_run(caplog):
    loaded_toolbox()

    def broken(event):
        raise RuntimeError("handler broke")

    after = []
    events.subscribe("toolbox.ping", broken, plugin="toolbox")
    events.subscribe("toolbox.ping", after.append)

    with caplog.at_level(logging.ERROR, logger="tachycore.events"):
        assert events.publish("toolbox.ping", "p") == 3

    assert len(HEARD) == 1 and [event.payload for event in after] == ["p"]
    expected = (f"event 'toolbox.ping': handler {__name__}.{broken.__qualname__} of plugin 'toolbox' "
                "failed: RuntimeError: handler broke")
    assert runtime.supervisor.errors[0]["message"] == expected
    assert [record.getMessage() for record in caplog.records] == [expected]
    assert caplog.records[0].exc_info is not None  # the traceback is in the log, for whoever reads it


@pytest.mark.django_db
def test_publish__a_failing_handler_inside_the_publishers_transaction_leaves_it_usable():
    """Each handler runs in a savepoint: a failing one's writes go, the publisher's
    transaction goes on (PostgreSQL would otherwise refuse every statement after the error)."""

    def broken(event):
        Group.objects.create(name="written by the broken handler")
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table_here")

    events.subscribe("thing.done", broken)
    events.subscribe("thing.done", lambda event: Group.objects.create(name="written after"))

    with transaction.atomic():
        assert events.publish("thing.done") == 2
        Group.objects.create(name="written by the publisher")

    assert sorted(Group.objects.values_list("name", flat=True)) == ["written after", "written by the publisher"]


def test_publish__with_no_subscriber_runs_nothing_and_reads_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert events.publish("nobody.listens", {"n": 1}) == 0


def test_subscribe__refuses_a_name_that_is_no_text_and_a_handler_that_cannot_be_called():
    with pytest.raises(EventError, match="an event name is a non-empty string"):
        events.subscribe("", print)
    with pytest.raises(EventError, match="the handler of event 'x.y' is not callable"):
        events.subscribe("x.y", "print")


def test_unsubscribe__the_handler_runs_no_more():
    ran = []
    events.subscribe("x.y", ran.append)

    assert events.unsubscribe("x.y", ran.append) is True
    assert events.publish("x.y") == 0
    assert events.unsubscribe("x.y", ran.append) is False
    assert ran == []


# -- instances: disable, reload ---------------------------------------------------------------


class Listener(Plugin):
    """Subscribes to ``listener.ping`` in load() and notes each event it hears; its load()
    also publishes one, to show where an event goes while a new instance is loading."""

    def __init__(self, name, heard, loads):
        self.name = name
        self.heard = heard
        self.loads = loads
        super().__init__(None)

    def load(self):
        self.loads.append(self)
        self.subscribe("listener.ping", self.on_ping)
        events.publish("listener.ping", "from a load()")

    def on_ping(self, event):
        self.heard.append((event.payload, self, current_plugin()))


@pytest.fixture
def heard():
    return []


@pytest.fixture
def loads():
    return []


@pytest.fixture
def manager(db, settings, heard, loads):
    """A manager of its own over a memory registry, with one plugin, ``alpha``, enabled."""
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": "off"}  # no grants: it is no site plugin
    built = PluginManager(registry=MemoryRegistry(), plugins=[Listener("alpha", heard, loads)])
    built.enable("alpha")
    return built


def owners(name):
    return [subscription.owner for subscription in events.subscriptions(name)]


def test_disable__removes_the_handlers_its_load_subscribed_and_enable_subscribes_them_once(manager, heard,
                                                                                          loads):
    assert loads == [manager.instances.active("alpha").plugin]  # the event in its load() loaded no other
    assert events.publish("listener.ping", "before") == 1
    assert [(payload, who) for payload, _, who in heard] == [("before", "alpha")]

    manager.disable("alpha")

    assert events.subscriptions("listener.ping") == []
    assert events.publish("listener.ping", "while disabled") == 0

    manager.enable("alpha")
    active = manager.instances.active("alpha").plugin
    assert loads[-1] is active and len(loads) == 2
    assert owners("listener.ping") == [active]
    assert events.publish("listener.ping", "after") == 1
    assert [payload for payload, _, _ in heard] == ["before", "after"]


def test_disable__a_handler_subscribed_outside_load_stays_and_is_skipped_while_disabled(manager):
    ran = []
    manager.plugins["alpha"].subscribe("listener.other", lambda event: ran.append(current_plugin()))

    manager.disable("alpha")
    assert events.publish("listener.other") == 0
    manager.enable("alpha")
    assert events.publish("listener.other") == 1

    assert ran == ["alpha"]
    assert [subscription.plugin for subscription in events.subscriptions("listener.other")] == ["alpha"]


def test_reload__the_old_instances_handlers_go_and_the_new_ones_run_from_the_switch(manager, heard):
    old = manager.instances.active("alpha").plugin

    manager.reload("alpha")

    new = manager.instances.active("alpha").plugin
    assert new is not old
    assert owners("listener.ping") == [new]
    # the new instance's load() published before the switch: the old instance heard it
    assert [(payload, instance) for payload, instance, _ in heard] == [("from a load()", old)]
    heard.clear()
    assert events.publish("listener.ping", "after the switch") == 1
    assert [(payload, instance) for payload, instance, _ in heard] == [("after the switch", new)]


@pytest.mark.django_db
def test_reload__of_a_site_plugin_subscribes_the_new_instance_in_its_place():
    old = loaded_toolbox()

    plugin_manager.reload("toolbox")
    events.publish("toolbox.ping", "after the reload")

    new = plugin_manager.instances.active("toolbox").plugin
    assert new is not old
    assert owners("toolbox.ping") == [new]
    assert [(heard["instance"], heard["payload"]) for heard in HEARD] == [(new, "after the reload")]


# -- broadcast: what is sent, and what a receiving process does with it ------------------------


def test_broadcast__a_payload_that_is_not_json_is_refused_before_any_handler_runs(db):
    ran = []
    events.subscribe("thing.done", ran.append)

    with pytest.raises(EventError, match=r"event 'thing.done': a broadcast payload must be JSON: .*set"):
        events.publish("thing.done", {"tags": {"a", "b"}}, broadcast=True)
    with pytest.raises(EventError, match=f"cannot be broadcast: .*the limit is {MAX_MESSAGE_BYTES}"):
        events.publish("thing.done", "x" * MAX_MESSAGE_BYTES, broadcast=True)

    assert ran == []
    assert events.publish("thing.done", {"tags": {"a", "b"}}) == 1  # not broadcast: any object


@pytest.fixture
def other_process(settings):
    """An in-process adapter with a node id of its own, standing for another process: what
    this process broadcasts arrives in ``other_process`` as ``(channel, payload)``."""
    settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": "tachycore.pubsub.memory.MemoryPubSub"}
    runtime.reset_pubsub()
    got: queue.Queue = queue.Queue()
    adapter = MemoryPubSub("other-node", lambda channel, payload, origin: got.put((channel, payload)),
                           lambda: None)
    runtime.pubsub.start()
    adapter.start()
    yield got
    adapter.stop()
    runtime.pubsub.stop()


@pytest.mark.django_db
def test_broadcast__is_sent_after_commit_and_a_rollback_sends_nothing(other_process,
                                                                     django_capture_on_commit_callbacks):
    ran = []
    events.subscribe("thing.done", ran.append)

    with django_capture_on_commit_callbacks(execute=True) as rolled_back, pytest.raises(RuntimeError), \
            transaction.atomic():
        assert events.publish("thing.done", {"n": 1}, broadcast=True) == 1  # here: at once
        raise RuntimeError("roll back")
    assert rolled_back == [] and other_process.empty()

    with django_capture_on_commit_callbacks(execute=True), acting_as("notes"), trace.span("request"):
        events.publish("thing.done", {"n": 2}, broadcast=True)
        assert other_process.empty()  # not before the commit
        traceparent = trace.traceparent()

    channel, message = other_process.get(timeout=5)
    assert channel == events.CHANNEL
    assert message == {"name": "thing.done", "payload": {"n": 2}, "publisher": "notes",
                       "trace": {"traceparent": traceparent}}
    assert [event.payload for event in ran] == [{"n": 1}, {"n": 2}]


@pytest.mark.django_db
def test_deliver__runs_the_handlers_here_as_their_plugin_in_the_senders_trace():
    loaded_toolbox()
    trace_id = uuid.uuid4().hex
    message = {"name": "toolbox.ping", "payload": {"n": 1}, "publisher": "notes",
               "trace": {"traceparent": f"00-{trace_id}-{'1' * 16}-01"}}
    remote = []
    events.subscribe("toolbox.ping", lambda event: remote.append(event.remote))

    assert events.deliver(message) == 2

    [heard] = HEARD
    assert (heard["plugin"], heard["inside"], heard["publisher"], heard["trace_id"]) == (
        "toolbox", True, "notes", trace_id)
    assert remote == [True]


def test_receive__hands_the_event_to_a_thread_of_its_own_so_the_listener_goes_on():
    """A slow handler must not hold up the sync listener (the other channels' messages, and
    its liveness, which a stuck listener loses)."""
    started, release, threads = threading.Event(), threading.Event(), []

    def slow(event):
        started.set()
        release.wait(5)
        threads.append(threading.current_thread().name)

    events.subscribe("slow.one", slow)
    events.receive({"name": "slow.one", "payload": None})  # what the listener calls: returns at once

    assert started.wait(5)
    release.set()
    events.inbox.wait_empty()
    assert threads == ["tachycore-events"]


# -- another real process ----------------------------------------------------------------------


class Node:
    """A process of the site that knows the herald plugin (tests/helpers/events_node.py):
    commands on its standard input, what it says (JSON lines) read on a thread."""

    def __init__(self, env: dict[str, str], errors) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.events_node"], env=env, cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, *command) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout: float = 10) -> list[dict]:
        """The lines said until one satisfies ``predicate`` (that one last)."""
        deadline, said = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            try:
                said.append(self.lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
            if predicate(said[-1]):
                return said
        raise AssertionError(f"the node did not say it within {timeout} s; it said {said}")

    def ask(self, *command) -> list[dict]:
        """Send ``command`` and return what was said until its answer (``ran``, ``subscriptions``)."""
        self.send(*command)
        return self.wait_for(lambda line: "ran" in line or "subscriptions" in line)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def node(subprocess_env, settings, request, tmp_path):
    """A second process with herald enabled, both processes on a cross-process sync channel:
    PostgreSQL's LISTEN/NOTIFY, or on SQLite a Redis channel of this test alone."""
    env = {**subprocess_env, "DJANGO_SETTINGS_MODULE": "tests.settings_events"}
    if connection.vendor == "sqlite":
        pubsub = {"BACKEND": "tachycore.pubsub.redis.RedisPubSub",
                  "OPTIONS": {"URL": request.getfixturevalue("redis_url"), "CHANNEL": f"events-{uuid.uuid4().hex}"}}
        settings.TACHYCORE = {**settings.TACHYCORE, "PUBSUB": pubsub}
        env["TACHYCORE_PUBSUB"] = json.dumps(pubsub)
    runtime.reset_pubsub()
    enabled = manage(env, "pm", "enable", "herald")
    assert enabled.returncode == 0, enabled.stderr
    errors = tmp_path / "node.err"  # a file: a full pipe would stall the node
    with errors.open("w") as stderr:
        started = Node(env, stderr)
    try:
        ready = started.wait_for(lambda line: "ready" in line, timeout=30)[-1]
        assert ready["subscriptions"] == ["herald", None]  # herald's (its load()), then the host's
        yield started
    finally:
        started.stop()
    assert "Traceback" not in errors.read_text(), errors.read_text()


def heard_by(said, who):
    return [line["payload"] for line in said if line.get("heard") and line["by"] == who]


@pytest.mark.django_db(transaction=True)
def test_broadcast__reaches_the_handlers_of_another_process_as_their_plugin_in_the_publishers_trace(node):
    with acting_as("notes"), trace.span("request"):
        assert events.publish("herald.ping", {"n": 1}, broadcast=True) == 0  # no handler here
        trace_id = trace.current_trace_id()

    said = node.wait_for(lambda line: line.get("by", "") is None)  # the host's handler comes last
    herald = next(line for line in said if line.get("by") == "herald")
    assert herald == {"heard": "herald.ping", "by": "herald", "payload": {"n": 1}, "publisher": "notes",
                      "remote": True, "trace_id": trace_id,
                      "thread": "tachycore-events"}


@pytest.mark.django_db(transaction=True)
def test_broadcast__a_publish_rolled_back_reaches_no_other_process(node):
    with pytest.raises(RuntimeError), transaction.atomic():
        events.publish("herald.ping", {"n": 1}, broadcast=True)
        raise RuntimeError("roll back")
    events.publish("herald.ping", {"n": 2}, broadcast=True)

    said = node.wait_for(lambda line: line.get("by", "") is None)
    assert heard_by(said, "herald") == [{"n": 2}] and heard_by(said, None) == [{"n": 2}]


@pytest.mark.django_db(transaction=True)
def test_disable__removes_the_plugins_handlers_in_another_process(node):
    assert heard_by(node.ask("publish", "herald.ping", "before"), "herald") == ["before"]

    plugin_manager.disable("herald")  # its code is not in this process: the registry says it

    assert wait_until(lambda: node.ask("subscriptions", "herald.ping")[-1]["subscriptions"] == [None], 10)
    said = node.ask("publish", "herald.ping", "local, after")
    assert said[-1] == {"ran": 1} and heard_by(said, "herald") == [] and heard_by(said, None) == ["local, after"]
    events.publish("herald.ping", "broadcast, after", broadcast=True)
    said = node.wait_for(lambda line: line.get("by", "") is None)
    assert heard_by(said, "herald") == [] and heard_by(said, None) == ["broadcast, after"]
