"""Services through the kernel: publishing, ``tachycore.invoke``, ``get_service``, ``pm services``.

The built-in test plugin ``toolbox`` (tests/plugin_apps/toolbox) publishes services that say
who runs them and on which instance; the demo's ``audit`` publishes ``audit:record``, which
``notes`` calls. The host site calls with no grant; ``notes`` is the plugin caller (the test
settings grant it ``service:audit:record`` WRITE and nothing of toolbox).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from typing import Any, Protocol

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

import tachycore
from demo.audit.models import AuditEvent as DemoAuditEvent
from demo.audit.protocols import AuditLog
from tachycore import audit, services, trace
from tachycore.checks import check_services
from tachycore.context import acting_as, current_plugin
from tachycore.errors import (
    CapabilityDenied,
    InvalidGrant,
    PluginUnavailable,
    ServiceNotFound,
    ServiceUnavailable,
)
from tachycore.governance import grants
from tachycore.manager import plugin_manager
from tachycore.models import Access, AuditEvent
from tachycore.plugins import Plugin
from tests.helpers.grants import revoke
from tests.helpers.processes import ROOT, wait_until
from tests.plugin_apps.toolbox.plugin import ToolboxPlugin
from tests.plugin_apps.toolbox.protocols import Identity

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE}-00f067aa0ba902b7-01"


def pm(*args: str) -> str:
    out = io.StringIO()
    call_command("pm", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def toolbox_instance() -> Any:
    plugin_manager.is_enabled("toolbox")
    return plugin_manager.instances.active("toolbox")


def audit_rows(**filters: Any) -> list[AuditEvent]:
    assert audit.flush(), audit.stats()
    return list(AuditEvent.objects.filter(action="service.invoke", **filters).order_by("id"))


@pytest.fixture
def trail():
    """An empty audit trail (rows are written on the writer thread's connection: the tests
    that read them commit for real, ``transaction=True``)."""
    assert audit.flush()
    AuditEvent.objects.all().delete()
    yield
    audit.flush()


# -- publishing ------------------------------------------------------------------------------


class Catalogue(Plugin):
    name = "catalogue"

    @tachycore.service
    def get_item(self): ...

    @tachycore.service
    def find(self): ...

    @tachycore.service
    def list_items(self): ...

    @tachycore.service
    def query_items(self): ...

    @tachycore.service
    def count(self): ...

    @tachycore.service
    def is_open(self): ...

    @tachycore.service
    def has_item(self): ...

    @tachycore.service
    def queryUser(self): ...  # camelCase: its first word counts all the same

    @tachycore.service
    def create_item(self): ...

    @tachycore.service
    def save(self): ...

    @tachycore.service
    def update_item(self): ...

    @tachycore.service
    def delete_item(self): ...

    @tachycore.service
    def remove_item(self): ...

    @tachycore.service
    def add_item(self): ...

    @tachycore.service
    def set_price(self): ...

    @tachycore.service
    def issue_refund(self): ...  # "issue" is not "is"

    @tachycore.service()
    def rebuild(self): ...

    @tachycore.service("lookup", access="READ")
    def do_the_lookup(self):
        return "looked up"

    @tachycore.service(access=Access.WRITE)
    def recount(self): ...

    def helper(self): ...


def test_service__access_is_inferred_from_the_first_word_of_the_name():
    access = {name: found.access.name for name, found in services.published(Catalogue).items()}

    assert access == {
        "get_item": "READ", "find": "READ", "list_items": "READ", "query_items": "READ", "count": "READ",
        "is_open": "READ", "has_item": "READ", "queryUser": "READ",
        "create_item": "WRITE", "save": "WRITE", "update_item": "WRITE", "delete_item": "WRITE",
        "remove_item": "WRITE", "add_item": "WRITE", "set_price": "WRITE",
        "issue_refund": "EXECUTE", "rebuild": "EXECUTE",
        "lookup": "READ", "recount": "WRITE",
    }


def test_service__an_explicit_name_publishes_the_method_under_it():
    found = services.published(Catalogue)

    assert found["lookup"].attribute == "do_the_lookup"
    assert "do_the_lookup" not in found
    assert "helper" not in found


def test_service__the_method_called_directly_is_a_plain_call():
    # catalogue is no installed plugin: through the kernel, the call would be ServiceNotFound
    assert Catalogue().do_the_lookup() == "looked up"


def test_tachycore__exports_service_invoke_and_get_service():
    assert (tachycore.service, tachycore.invoke, tachycore.get_service) == (
        services.service, services.invoke, services.get_service)
    assert vars(tachycore)["invoke"] is services.invoke  # found directly from the first use on


def test_tachycore__imports_before_django_is_set_up():
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", "import tachycore; print(sorted(tachycore.__all__))"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "'get_service', 'invoke'" in result.stdout


@pytest.mark.parametrize(("arguments", "error"), [
    ({"name": "audit:record"}, ValueError),
    ({"name": "two words"}, ValueError),
    ({"name": ""}, ValueError),
    ({"access": "ROOT"}, InvalidGrant),
    ({"access": "NONE"}, ValueError),
])
def test_service__a_bad_name_or_access_is_refused_where_it_is_written(arguments, error):
    with pytest.raises(error):
        tachycore.service(**arguments)(lambda self: None)


def test_published__a_subclass_inherits_services_and_unpublishes_a_method_it_redefines():
    class Narrower(Catalogue):
        def get_item(self): ...

        @tachycore.service
        def get_more(self): ...

    found = services.published(Narrower)

    assert "get_item" not in found
    assert {"get_more", "find", "lookup"} <= set(found)


def test_published__one_name_published_twice_is_refused():
    class Twice(Plugin):
        @tachycore.service("same")
        def first(self): ...

        @tachycore.service("same")
        def second(self): ...

    with pytest.raises(ImproperlyConfigured, match="publishes the service 'same' twice"):
        services.published(Twice)


def test_check__reports_a_name_published_twice_as_e008(monkeypatch):
    monkeypatch.setattr(services, "_published", {})
    monkeypatch.setattr(ToolboxPlugin, "echo_again", tachycore.service("echo")(lambda self: None), raising=False)

    [message] = [m for m in check_services() if "toolbox" in m.msg]

    assert message.id == "tachycore.E008"
    assert "publishes the service 'echo' twice" in message.msg


# -- invoke: who may call ---------------------------------------------------------------------


@pytest.mark.django_db
def test_invoke__from_the_host_site_needs_no_grant():
    assert tachycore.invoke("toolbox:echo", 1, "two", three=3) == {"args": [1, "two"], "kwargs": {"three": 3}}


@pytest.mark.django_db
def test_invoke__a_keyword_argument_named_like_invokes_own_parameter_reaches_the_service():
    assert tachycore.invoke("toolbox:echo", service_id="x") == {"args": [], "kwargs": {"service_id": "x"}}


@pytest.mark.django_db
@pytest.mark.parametrize("capability", ["service:toolbox", "service:toolbox:get_identity"])
def test_invoke__from_a_plugin_holding_the_grant(capability):
    grants.grant("notes", capability, "READ")

    with acting_as("notes"):
        assert tachycore.invoke("toolbox:get_identity")["plugin"] == "toolbox"


@pytest.mark.django_db
def test_invoke__a_grant_below_the_services_access_is_refused():
    grants.grant("notes", "service:toolbox", "READ")

    with acting_as("notes"), pytest.raises(CapabilityDenied) as refused:
        tachycore.invoke("toolbox:set_flag", True)  # WRITE

    assert refused.value.capability == "service:toolbox:set_flag"
    assert refused.value.access == Access.WRITE
    assert "manage.py pm grant notes service:toolbox:set_flag WRITE" in str(refused.value)


@pytest.mark.django_db
def test_invoke__a_grant_of_one_service_covers_no_other():
    grants.grant("notes", "service:toolbox:get_identity", "EXECUTE")

    with acting_as("notes"), pytest.raises(CapabilityDenied):
        tachycore.invoke("toolbox:echo")


@pytest.mark.django_db
def test_invoke__a_plugin_calling_its_own_service_needs_no_grant():
    pm("enable", "audit")  # audit holds storage:sql for its table, and no service grant

    with acting_as("audit"):
        assert tachycore.invoke("audit:list_recent", 1)[0]["event"] == "enabled"


@pytest.mark.django_db
def test_invoke__built_in_plugins_need_no_grant():
    with acting_as("jobs"):
        assert tachycore.invoke("toolbox:stats") == {"loaded": True}
    # toolbox calling its own service from inside one of its services
    assert tachycore.invoke("toolbox:call", "toolbox:echo", 2)["args"] == [2]


@pytest.mark.django_db(transaction=True)
def test_invoke__without_the_grant_is_refused_and_the_denial_recorded(trail):
    with acting_as("notes"), pytest.raises(CapabilityDenied):
        tachycore.invoke("toolbox:get_identity")

    [row] = audit_rows()
    assert (row.plugin, row.capability, row.access, row.decision, row.target) == (
        "notes", "service:toolbox:get_identity", Access.READ, "denied", "toolbox:get_identity")


@pytest.mark.django_db(transaction=True)
def test_invoke__in_audit_mode_goes_through_recorded_as_would_deny(trail, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": "audit"}

    with acting_as("notes"):
        assert tachycore.invoke("toolbox:get_identity")["plugin"] == "toolbox"

    assert [(row.plugin, row.decision) for row in audit_rows()] == [("notes", "would_deny")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("audit_allowed", "recorded"), [
    ("none", []),
    ("writes", ["service:toolbox:set_flag"]),
    ("all", ["service:toolbox:get_identity", "service:toolbox:set_flag"]),
])
def test_invoke__allowed_calls_are_recorded_per_audit_allowed(trail, settings, audit_allowed, recorded):
    settings.TACHYCORE = {**settings.TACHYCORE, "AUDIT_ALLOWED": audit_allowed}
    grants.grant("notes", "service:toolbox", "WRITE")
    assert audit.flush()
    AuditEvent.objects.all().delete()  # the grant's own row

    with acting_as("notes"):
        tachycore.invoke("toolbox:get_identity")
        tachycore.invoke("toolbox:set_flag", 1)

    found = audit_rows(plugin="notes")
    assert [row.capability for row in found] == recorded
    assert {row.decision for row in found} <= {"allowed"}


# -- invoke: where and as whom it runs ------------------------------------------------------------


@pytest.mark.django_db
def test_invoke__the_service_runs_as_its_plugin_inside_its_active_instance():
    grants.grant("notes", "service:toolbox", "READ")

    with acting_as("notes"):
        seen = tachycore.invoke("toolbox:get_identity")
        assert current_plugin() == "notes"  # the caller's again once the call returned

    assert seen["plugin"] == "toolbox"
    assert seen["instance"] == id(toolbox_instance().plugin)
    assert seen["entered"] is True
    assert toolbox_instance().calls == 0


@pytest.mark.django_db
def test_invoke__keeps_the_callers_trace():
    with trace.span("a request", {"traceparent": INCOMING}):
        seen = tachycore.invoke("toolbox:get_identity")

    assert seen["trace_id"] == TRACE


@pytest.mark.django_db(transaction=True)
def test_invoke__a_reload_during_a_slow_call_lets_it_finish_on_the_old_instance():
    old = toolbox_instance().plugin
    inside, release = threading.Event(), threading.Event()
    result: dict[str, Any] = {}

    def slow() -> None:
        try:
            result["value"] = tachycore.invoke("toolbox:hold", inside, release)
        except BaseException as e:  # handed to the test
            result["error"] = e

    caller = threading.Thread(target=slow)
    caller.start()
    try:
        assert inside.wait(5)
        plugin_manager.reload("toolbox")

        after = tachycore.invoke("toolbox:get_identity")  # while the slow call is still inside
        assert after["instance"] != id(old)
        assert after["instance"] == id(toolbox_instance().plugin)
        assert not old.unloaded
    finally:
        release.set()
        caller.join(10)

    assert result == {"value": {"instance": id(old), "unloaded_while_inside": False}}
    assert wait_until(lambda: old.unloaded, 5)  # once its last call returned


@pytest.mark.django_db
def test_invoke__of_a_plugin_not_enabled_is_unavailable():
    with pytest.raises(ServiceUnavailable) as refused:
        tachycore.invoke("audit:list_recent")

    assert "service 'audit:list_recent' is unavailable: plugin 'audit' is not enabled" in str(refused.value)
    assert isinstance(refused.value, PluginUnavailable)


@pytest.mark.django_db
def test_invoke__of_a_disabled_plugin_is_unavailable():
    pm("enable", "notes")
    assert tachycore.invoke("audit:list_recent", 1)
    pm("disable", "notes", "audit")

    with pytest.raises(ServiceUnavailable):
        tachycore.invoke("audit:list_recent", 1)


@pytest.mark.django_db
def test_invoke__a_caller_without_the_grant_is_refused_even_when_the_callee_is_disabled():
    with acting_as("notes"), pytest.raises(CapabilityDenied):
        tachycore.invoke("audit:list_recent")  # audit is not enabled, and notes holds no READ on it


@pytest.mark.django_db
@pytest.mark.parametrize(("service_id", "says"), [
    ("nosuch:thing", "unknown service 'nosuch:thing': no plugin named 'nosuch' is installed"),
    ("toolbox:nosuch", "plugin 'toolbox' publishes no service 'nosuch' (its services: call, echo,"),
    ("toolbox:helper", "publishes no service 'helper'"),
    ("toolbox", "invalid service id 'toolbox': a service id is '<plugin>:<service>'"),
    ("toolbox:echo:more", "invalid service id"),
    ("", "invalid service id"),
    (":echo", "no plugin named ''"),
    (42, "invalid service id 42"),
    (["toolbox:echo"], "invalid service id"),
])
def test_invoke__an_unknown_or_malformed_id_is_not_found(service_id, says):
    with pytest.raises(ServiceNotFound) as refused:
        tachycore.invoke(service_id)

    assert says in str(refused.value)
    assert isinstance(refused.value, LookupError)


@pytest.mark.django_db
def test_invoke__an_exception_raised_by_the_service_reaches_the_caller_unchanged():
    grants.grant("notes", "service:toolbox", "EXECUTE")
    error = KeyError("the service's own")

    with acting_as("notes"):
        with pytest.raises(KeyError) as raised:
            tachycore.invoke("toolbox:fail_with", error)
        assert current_plugin() == "notes"

    assert raised.value is error
    assert toolbox_instance().calls == 0


@pytest.mark.django_db
def test_invoke__a_kernel_error_inside_the_service_is_not_taken_for_the_outer_calls():
    with pytest.raises(ServiceNotFound, match="'toolbox:nosuch'"):
        tachycore.invoke("toolbox:call", "toolbox:nosuch")
    with pytest.raises(ServiceUnavailable, match="'audit:list_recent'"):
        tachycore.invoke("toolbox:call", "audit:list_recent")


WITH_SDK = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

import django
django.setup()
import tachycore
with trace.get_tracer("test").start_as_current_span("caller") as caller:
    seen = tachycore.invoke("toolbox:get_identity")
spans = {s.name: {"trace": format(s.context.trace_id, "032x"), "span": format(s.context.span_id, "016x"),
                  "parent": format(s.parent.span_id, "016x") if s.parent else None}
         for s in exporter.get_finished_spans()}
print(json.dumps({"seen": seen["trace_id"], "spans": spans}))
"""


def test_invoke__with_the_opentelemetry_sdk_runs_in_a_span_of_its_own(subprocess_env):
    env = {**subprocess_env, "TACHYCORE_START_RUNTIME": "false"}
    result = subprocess.run([sys.executable, "-c", WITH_SDK], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    caller, call = found["spans"]["caller"], found["spans"]["service toolbox:get_identity"]
    assert call["parent"] == caller["span"]
    assert call["trace"] == caller["trace"] == found["seen"]


# -- Protocols --------------------------------------------------------------------------------


class NobodyProvides(Protocol):
    def get_identity(self) -> dict[str, Any]: ...


class Wider(Identity, Protocol):
    def delete_everything(self) -> None: ...


@pytest.mark.django_db
def test_get_service__each_call_of_the_proxy_goes_through_invoke():
    proxy = tachycore.get_service(Identity)

    assert proxy.get_identity()["plugin"] == "toolbox"
    assert proxy.echo(1, a=2) == {"args": [1], "kwargs": {"a": 2}}
    assert repr(proxy) == "<ServiceProxy Identity of plugin 'toolbox'>"
    with acting_as("notes"), pytest.raises(CapabilityDenied, match="service:toolbox:get_identity"):
        proxy.get_identity()


@pytest.mark.django_db
def test_get_service__of_a_protocol_nobody_provides_is_not_found():
    with pytest.raises(ServiceNotFound, match=r"no installed plugin provides tests\.test_services\.NobodyProvides"):
        tachycore.get_service(NobodyProvides)


@pytest.mark.django_db
def test_get_service__a_method_the_provider_does_not_publish_is_named(monkeypatch):
    monkeypatch.setattr(ToolboxPlugin, "provides", (Wider,))

    with pytest.raises(ServiceNotFound, match="publishes no service for delete_everything"):
        tachycore.get_service(Wider)
    # Wider extends Identity: toolbox still provides Identity
    assert tachycore.get_service(Identity).echo()["args"] == []


@pytest.mark.django_db
def test_get_service__a_plugin_named_must_provide_it():
    with pytest.raises(ServiceNotFound, match="plugin 'audit' does not provide"):
        tachycore.get_service(Identity, plugin="audit")


@pytest.mark.django_db
def test_get_service__the_demos_audit_log():
    pm("enable", "notes")

    recent = tachycore.get_service(AuditLog).list_recent(5)

    assert [(event["plugin"], event["event"]) for event in recent][:2] == [("notes", "enabled"), ("audit", "enabled")]


# -- manage.py pm services --------------------------------------------------------------------


@pytest.mark.django_db
def test_pm_services__lists_each_service_with_its_access_the_plugins_state_and_protocols():
    pm("enable", "audit")
    pm("disable", "audit")

    lines = pm("services").splitlines()

    assert lines[0].split() == ["SERVICE", "ACCESS", "PLUGIN", "STATE", "PROVIDES"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["toolbox:get_identity"] == ["READ", "enabled", "tests.plugin_apps.toolbox.protocols.Identity"]
    assert rows["toolbox:stats"][0] == "READ"
    assert rows["toolbox:set_flag"][0] == "WRITE"
    assert rows["toolbox:echo"][0] == "EXECUTE"
    assert rows["audit:record"] == ["WRITE", "disabled", "demo.audit.protocols.AuditLog"]
    assert rows["audit:list_recent"] == ["READ", "disabled", "demo.audit.protocols.AuditLog"]


@pytest.mark.django_db
def test_pm_services__json():
    pm("enable", "notes")

    found = {entry["id"]: entry for entry in json.loads(pm("services", "--json"))}

    assert found["audit:record"] == {
        "id": "audit:record", "plugin": "audit", "service": "record", "method": "record", "access": "WRITE",
        "state": "enabled", "enabled": True, "provides": ["demo.audit.protocols.AuditLog"]}
    assert found["toolbox:stats"]["method"] == "statistics"
    assert not any(entry["plugin"] == "notes" for entry in found.values())  # notes publishes none


# -- the demo: notes writes to audit through its service ---------------------------------------


def demo_events(plugin: str) -> list[str]:
    return list(DemoAuditEvent.objects.filter(plugin=plugin).order_by("id").values_list("event", flat=True))


@pytest.mark.django_db(transaction=True)
def test_demo__notes_records_enable_and_disable_through_audit_record(trail, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "AUDIT_ALLOWED": "writes"}

    pm("enable", "notes")
    pm("disable", "notes")

    assert demo_events("notes") == ["enabled", "disabled"]
    calls = audit_rows(plugin="notes")
    assert [(row.capability, row.access, row.decision, row.target) for row in calls] == [
        ("service:audit:record", Access.WRITE, "allowed", "audit:record")] * 2


@pytest.mark.django_db
def test_demo__notes_asks_for_the_service_not_for_audits_table():
    from demo.notes.plugin import NotesPlugin

    assert NotesPlugin.capabilities["service:audit:record"] == "WRITE"
    assert not any(capability.startswith("storage:sql:") for capability in NotesPlugin.capabilities)


@pytest.mark.django_db
def test_demo__notes_without_the_grant_is_still_disabled_without_its_event(caplog):
    pm("enable", "notes")
    revoke("notes", "service:audit:record")

    assert pm("disable", "notes").startswith("Disabled notes.")

    assert demo_events("notes") == ["enabled"]
    assert "notes: disabled without an audit event" in caplog.text


@pytest.mark.django_db
def test_demo__audit_record_refuses_a_bad_event():
    pm("enable", "notes")

    with acting_as("notes"), pytest.raises(ValueError, match="event must be a text of 1 to 200 characters"):
        tachycore.invoke("audit:record", "notes", "x" * 201)


@pytest.mark.parametrize("body", ["async def later(self): ...", "def several(self):\n    yield 1"])
def test_service__a_coroutine_or_generator_is_refused_where_it_is_written(body):
    namespace: dict = {}
    exec(body, namespace)  # noqa: S102 (a method defined at run time for the test)
    method = next(value for key, value in namespace.items() if key != "__builtins__")

    with pytest.raises(ValueError, match="a service is a plain function"):
        tachycore.service(method)
