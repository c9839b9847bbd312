"""Blue-green plugin instances in one process: reloads under load, the drain, its limits.

The bluegreen test plugin (tests/plugin_apps/bluegreen) numbers its instances as they load
and records each unload with the calls inside it at that moment.
"""

from __future__ import annotations

import io
import random
import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

import tachycore
from tachycore.audit import flush
from tachycore.errors import PluginStateError, ServiceUnavailable, TooManyDraining
from tachycore.instances import current_instance
from tachycore.manager import plugin_manager
from tachycore.models import AuditEvent
from tachycore.runtime import runtime
from tests.helpers.processes import wait_until
from tests.plugin_apps.bluegreen.plugin import HISTORY

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def bluegreen():
    """The bluegreen plugin enabled, with a fresh history; disabled after the test."""
    plugin_manager.enable("bluegreen")
    HISTORY.clear()
    yield plugin_manager.instances
    if plugin_manager.is_enabled("bluegreen"):
        plugin_manager.disable("bluegreen")


def work(**kwargs):
    """One call of the service bluegreen:work: a state check when one is due, then the
    service runs inside the active instance (``ServiceUnavailable`` when there is none)."""
    return tachycore.invoke("bluegreen:work", **kwargs)


def serial_now():
    plugin_manager.is_enabled("bluegreen")
    with plugin_manager.instances.entered("bluegreen") as plugin:
        return plugin.serial


def calls_inside():
    active = plugin_manager.instances.active("bluegreen")
    return active.calls if active is not None else 0


def unloads():
    return [(serial, inside) for event, serial, inside in HISTORY if event == "unload"]


def in_thread(func, *args, **kwargs):
    result = {}

    def run():
        try:
            result["value"] = func(*args, **kwargs)
        except BaseException as e:  # handed to the test
            result["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_reload__eight_threads_calling_a_service_never_fail_never_go_back_and_no_instance_unloads_with_a_call_inside(
        bluegreen):
    stop = threading.Event()
    seen: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def caller(index):
        while not stop.is_set():
            try:
                serial, _ = work(pause=random.choice((0, 0, 0.001)))
            except BaseException as e:
                errors.append(e)
                return
            seen[index].append(serial)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    reloads, refused = 0, 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        try:
            plugin_manager.reload("bluegreen")
            reloads += 1
        except TooManyDraining:
            refused += 1
        time.sleep(0.02)
    stop.set()
    for thread in threads:
        thread.join(10)

    assert errors == []
    assert reloads >= 20
    for serials in seen:
        assert serials, "every thread made calls"
        assert serials == sorted(serials), "a thread went back to an older instance"
    assert len({serial for serials in seen for serial in serials}) > 10
    assert wait_until(lambda: not plugin_manager.instances.draining("bluegreen"), timeout=5)
    assert unloads(), "old instances were unloaded"
    assert [inside for _, inside in unloads()] == [0] * len(unloads()), "an unload ran with a call inside"
    assert len(unloads()) == reloads  # every old instance, once


def test_reload__a_call_inside_finishes_on_the_old_instance_which_unloads_after_it(bluegreen):
    first = serial_now()
    release = threading.Event()
    thread, result = in_thread(work, until=release)
    assert wait_until(lambda: calls_inside() == 1, timeout=5)

    generation = plugin_manager.reload("bluegreen")

    assert plugin_manager.instances.active("bluegreen").generation == generation
    assert serial_now() > first  # new calls go to the new instance at once
    time.sleep(0.2)
    assert unloads() == []  # the old one waits for its call
    release.set()
    thread.join(5)
    assert result["value"][0] == first
    assert wait_until(lambda: unloads() == [(first, 0)], timeout=5)


def test_reload__refused_while_max_draining_old_instances_have_calls_inside(bluegreen, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "MAX_DRAINING": 2}
    release = threading.Event()
    held = []
    for _ in range(2):  # a call held inside each of two instances, each then replaced
        held.append(in_thread(work, until=release))
        assert wait_until(lambda: calls_inside() == 1, timeout=5)
        plugin_manager.reload("bluegreen")

    with pytest.raises(TooManyDraining, match=r"2 old instance\(s\) are still draining in this process \(at most MAX_DRAINING = 2\)"):
        plugin_manager.reload("bluegreen")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="still draining"):
        call_command("pm", "reload", "bluegreen", stdout=out, stderr=err)

    release.set()
    for thread, _ in held:
        thread.join(5)
    assert wait_until(lambda: not plugin_manager.instances.draining("bluegreen"), timeout=5)
    plugin_manager.reload("bluegreen")  # accepted again


def test_drain_timeout__a_busy_old_instance_is_unloaded_anyway_and_that_is_recorded(bluegreen, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "DRAIN_TIMEOUT": "300ms"}
    first = serial_now()
    release = threading.Event()
    thread, result = in_thread(work, until=release)
    assert wait_until(lambda: calls_inside() == 1, timeout=5)

    plugin_manager.reload("bluegreen")

    # at the timeout, with the call inside (the instance before the settings changed went at once)
    assert wait_until(lambda: (first, 1) in unloads(), timeout=3)
    errors = [entry["message"] for entry in runtime.supervisor.errors]
    assert any("'bluegreen': instance" in message and "still busy after DRAIN_TIMEOUT" in message
               for message in errors)
    flush()
    row = AuditEvent.objects.filter(action="instance.unload", plugin="bluegreen").get()
    assert row.decision == "failed" and "1 call(s) inside" in row.detail
    release.set()
    thread.join(5)
    assert "unloaded while a call was inside" in str(result["error"])


def test_disable__refuses_new_calls_at_once_and_runs_after_disable_and_unload_after_the_last_call(bluegreen):
    first = serial_now()
    release = threading.Event()
    thread, result = in_thread(work, until=release)
    assert wait_until(lambda: calls_inside() == 1, timeout=5)

    disabling, disabled = in_thread(plugin_manager.disable, "bluegreen")
    assert wait_until(lambda: plugin_manager.instances.active("bluegreen") is None, timeout=5)
    with pytest.raises(ServiceUnavailable):
        work()
    time.sleep(0.2)
    assert disabling.is_alive() and unloads() == []  # waiting for the call inside

    release.set()
    disabling.join(5)
    thread.join(5)
    assert disabled["value"] == ["bluegreen"] and result["value"][0] == first
    assert [event for event, *_ in HISTORY] == ["after_disable", "unload"]
    drain = plugin_manager.drains["bluegreen"]
    assert drain.calls == 1 and drain.drained


def test_disable__at_the_timeout_unloads_with_the_call_inside_and_the_command_says_so(bluegreen, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "DRAIN_TIMEOUT": "300ms"}
    release = threading.Event()
    thread, _ = in_thread(work, until=release)
    assert wait_until(lambda: calls_inside() == 1, timeout=5)
    out = io.StringIO()

    started = time.monotonic()
    call_command("pm", "disable", "bluegreen", stdout=out)

    assert 0.25 < time.monotonic() - started < 5
    assert "Disabled bluegreen." in out.getvalue()
    assert "ran at DRAIN_TIMEOUT" in out.getvalue() and "still inside" in out.getvalue()
    assert unloads()[-1][1] == 1
    release.set()
    thread.join(5)


def test_disable__without_calls_inside_has_nothing_more_to_say(bluegreen):
    out = io.StringIO()
    call_command("pm", "disable", "bluegreen", stdout=out)
    assert out.getvalue() == "Disabled bluegreen.\n"
    assert plugin_manager.drains["bluegreen"].describe() == (
        "bluegreen: no call was inside; after_disable and unload ran at once")


def test_reload_command__switches_and_says_so(bluegreen):
    first = serial_now()
    out = io.StringIO()
    call_command("pm", "reload", "bluegreen", stdout=out)
    assert "Reloaded bluegreen: every process switches to instance #" in out.getvalue()
    assert serial_now() > first


def test_reload__of_a_plugin_not_enabled_is_refused(bluegreen):
    plugin_manager.disable("bluegreen")
    with pytest.raises(PluginStateError, match="'bluegreen' is not enabled: there is no instance to reload"):
        plugin_manager.reload("bluegreen")
    with pytest.raises(CommandError, match="is not enabled"):
        call_command("pm", "reload", "bluegreen", stdout=io.StringIO())


def test_options_change__on_an_enabled_plugin_switches_to_an_instance_built_with_them(bluegreen):
    first = serial_now()
    release = threading.Event()
    thread, result = in_thread(work, until=release)
    assert wait_until(lambda: calls_inside() == 1, timeout=5)
    out = io.StringIO()

    call_command("pm", "enable", "bluegreen", "--options", '{"colour": "green"}', stdout=out)

    assert "every process switches to a new instance" in out.getvalue()
    assert work()[1] == "green" and serial_now() > first
    release.set()
    thread.join(5)
    assert result["value"] == (first, "blue")  # the call inside finished with the old options


def test_current_instance__is_the_entered_one_even_after_a_switch(bluegreen):
    with plugin_manager.instances.entered("bluegreen") as plugin:
        reloading, _ = in_thread(plugin_manager.reload, "bluegreen")  # by the host, not the plugin
        reloading.join(5)
        assert current_instance() is plugin
        assert plugin_manager.plugins["bluegreen"] is not plugin
    assert current_instance() is None


def test_a_failing_load_of_the_new_instance_keeps_the_old_one_serving(bluegreen, monkeypatch):
    first = serial_now()
    from tests.plugin_apps.bluegreen.plugin import BlueGreenPlugin

    def broken(self):
        raise RuntimeError("cannot load")

    monkeypatch.setattr(BlueGreenPlugin, "load", broken)
    plugin_manager.reload("bluegreen")

    assert serial_now() == first
    assert any("cannot load" in entry["message"] for entry in runtime.supervisor.errors)


def test_job__in_flight_finishes_on_the_old_instance_and_a_disabled_plugins_job_is_held(bluegreen):
    import jobs
    from jobs.dispatcher import Dispatcher
    from jobs.models import Job

    first = serial_now()
    store = jobs.get_job_store()
    job = store.enqueue("bluegreen.work", {"pause": 1.0})
    running, _ = in_thread(Dispatcher(burst=True, workers=1).run)
    assert wait_until(lambda: calls_inside() == 1, timeout=10)

    plugin_manager.reload("bluegreen")
    running.join(10)

    assert Job.objects.get(pk=job.id).result == {"serial": first, "colour": "blue"}
    assert wait_until(lambda: unloads() == [(first, 0)], timeout=5)

    plugin_manager.disable("bluegreen")
    held = store.enqueue("bluegreen.work", {})
    Dispatcher(burst=True, workers=1).run()
    assert Job.objects.get(pk=held.id).status == "pending"


def test_a_state_check_inside_load_builds_no_second_instance(db, monkeypatch):
    from tests.plugin_apps.bluegreen.plugin import BlueGreenPlugin

    loaded = BlueGreenPlugin.load

    def asking(self):
        loaded(self)
        plugin_manager.refresh(force=True)  # reads the registry inside the enable's transaction
        assert plugin_manager.is_enabled("bluegreen")

    monkeypatch.setattr(BlueGreenPlugin, "load", asking)
    HISTORY.clear()
    plugin_manager.enable("bluegreen")

    assert [event for event, *_ in HISTORY] == ["load"]
    assert plugin_manager.instances.active("bluegreen").plugin.serial == HISTORY[0][1]


def test_enable_with_options_of_a_disabled_plugin__loads_one_instance_with_them(bluegreen):
    plugin_manager.disable("bluegreen")
    HISTORY.clear()

    plugin_manager.enable("bluegreen", options={"colour": "green"})

    assert [event for event, *_ in HISTORY] == ["load"]
    assert work() == (HISTORY[0][1], "green")


def test_receiver_connected_in_load__runs_on_the_active_instance_only_and_goes_with_its_instance(
        bluegreen, monkeypatch):
    from django.dispatch import Signal

    from tests.plugin_apps.bluegreen.plugin import BlueGreenPlugin

    signal, seen = Signal(), []
    loaded = BlueGreenPlugin.load

    def load(self):
        loaded(self)
        self.connect(signal, lambda sender, **kwargs: seen.append((self.serial, self.live, current_instance())))

    monkeypatch.setattr(BlueGreenPlugin, "load", load)
    plugin_manager.reload("bluegreen")  # an instance that connected in load()
    first = serial_now()
    signal.send(sender=None)
    plugin_manager.reload("bluegreen")
    second = serial_now()
    assert wait_until(lambda: not plugin_manager.instances.draining("bluegreen"), timeout=5)
    signal.send(sender=None)
    plugin_manager.disable("bluegreen")
    signal.send(sender=None)

    active_then = [entry[2].serial for entry in seen]
    assert [(serial, live) for serial, live, _ in seen] == [(first, True), (second, True)]
    assert active_then == [first, second]  # current_instance() in the receiver


def test_current_instance__in_an_event_handler_is_the_handlers_instance(bluegreen):
    from tachycore import events

    got = []

    def handler(event):
        got.append(current_instance())

    events.subscribe("bluegreen.probe", handler, plugin="bluegreen")
    try:
        events.publish("bluegreen.probe")
    finally:
        events.unsubscribe("bluegreen.probe", handler, plugin="bluegreen")
    assert got == [plugin_manager.instances.active("bluegreen").plugin]


def test_after_disable__is_not_run_when_the_plugin_was_enabled_again_while_it_drained(bluegreen):
    release = threading.Event()
    caller, _ = in_thread(work, until=release)
    assert wait_until(lambda: calls_inside() == 1, timeout=5)
    disabling, _ = in_thread(plugin_manager.disable, "bluegreen")
    assert wait_until(lambda: plugin_manager.instances.active("bluegreen") is None, timeout=5)

    plugin_manager.enable("bluegreen")  # while the disable waits for the call inside
    release.set()
    disabling.join(10)
    caller.join(10)

    assert "after_disable" not in [event for event, *_ in HISTORY]
    assert plugin_manager.is_enabled("bluegreen") and work()


def test_a_job_whose_handler_meets_an_unavailable_service_fails_and_is_not_held(bluegreen, registered):
    import jobs
    from jobs.dispatcher import Dispatcher
    from jobs.models import Job

    def calls_a_disabled_service(job):
        return tachycore.invoke("audit:list_recent")

    registered("bluegreen.calls_audit", calls_a_disabled_service)
    job = jobs.get_job_store().enqueue("bluegreen.calls_audit", {}, max_retries=0)
    Dispatcher(burst=True, workers=1).run()

    row = Job.objects.get(pk=job.id)
    assert row.status == "failed"
    assert "ServiceUnavailable" in row.last_error


def test_grants__a_revoke_read_while_a_check_works_out_its_answer_is_not_forgotten(no_grants, monkeypatch):
    from tachycore import governance
    from tachycore.governance import grants
    from tachycore.models import Access

    grants.grant("notes", "service:audit", "READ")
    grants.refresh(force=True)
    real_covers, revoked = governance.covers, []

    def covers(granted, asked):  # another thread re-reads the grants in the middle of a check
        if not revoked:
            revoked.append(True)
            grants.revoke("notes", "service:audit")
            grants.refresh(force=True)
        return real_covers(granted, asked)

    monkeypatch.setattr(governance, "covers", covers)
    grants.access("notes", "service:audit:record")
    monkeypatch.setattr(governance, "covers", real_covers)

    assert grants.access("notes", "service:audit:record") == Access.NONE


def test_enable__from_a_thread_running_an_event_loop_does_not_wait_for_itself(monkeypatch):
    """Playwright's sync API (the browser tests) runs an event loop in the calling thread: a
    hook's state check there must not hand the check to a worker thread that waits for the
    lock the operation holds (notes' after_enable invokes audit's service)."""
    import asyncio

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    outcome = {}

    def in_a_loop():
        loop = asyncio.new_event_loop()

        def callback():  # run by the loop itself: a running loop, no task
            try:
                outcome["enabled"] = plugin_manager.enable("notes")
            except BaseException as e:
                outcome["error"] = e
            finally:
                loop.stop()

        loop.call_soon(callback)
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=in_a_loop, daemon=True)
    thread.start()
    thread.join(20)

    assert not thread.is_alive(), "the enable waited for itself"
    assert outcome == {"enabled": ["audit", "notes"]}
