"""The kernel's checks that help a new site along: the environment, django-q2, plugins not added."""

from __future__ import annotations

import logging

import pytest
from django.core.management import call_command

from tachycore import checks
from tachycore.conf import tachycore_settings
from tachycore.manager import plugin_manager
from tachycore.signals import process_started


def _ids_and_hints(messages):
    return [(message.id, message.msg, message.hint) for message in messages]


def test_environment__a_variable_close_to_a_key_is_a_warning_naming_the_key(monkeypatch):
    monkeypatch.setenv("TACHYCORE_HEARTBEAT_INTERVALL", "1s")

    [(check_id, message, hint)] = _ids_and_hints(checks.check_environment())

    assert check_id == "tachycore.W030"
    assert "TACHYCORE_HEARTBEAT_INTERVALL" in message
    assert hint == "Did you mean TACHYCORE_HEARTBEAT_INTERVAL?"


def test_environment__a_variable_like_no_key_is_a_warning_too(monkeypatch):
    monkeypatch.setenv("TACHYCORE_BOGUS", "1")

    [(check_id, message, _)] = _ids_and_hints(checks.check_environment())

    assert check_id == "tachycore.W030" and "TACHYCORE_BOGUS" in message


def test_environment__the_variables_of_every_app_are_checked(monkeypatch):
    monkeypatch.setenv("JOBS_WORKER", "8")
    monkeypatch.setenv("KV_L1_TTTL", "5s")

    hints = {message: hint for _, message, hint in _ids_and_hints(checks.check_environment())}

    assert any("JOBS_WORKER " in m and h == "Did you mean JOBS_WORKERS?" for m, h in hints.items())
    assert any("KV_L1_TTTL " in m and h == "Did you mean KV_L1_TTL?" for m, h in hints.items())


def test_environment__known_variables_pass(monkeypatch):
    monkeypatch.setenv("TACHYCORE_HEARTBEAT_INTERVAL", "1s")
    monkeypatch.setenv("JOBS_WORKERS", "2")
    tachycore_settings.reset()

    assert checks.check_environment() == []


def test_django_q__a_missing_q_cluster_is_an_error_with_the_setting_to_add(settings):
    del settings.Q_CLUSTER

    [(check_id, message, hint)] = _ids_and_hints(checks.check_django_q())

    assert check_id == "tachycore.E004" and "Q_CLUSTER is not set" in message
    assert checks.DJANGO_Q_SETTING in hint


def test_django_q__the_setting_the_error_gives_passes(settings):
    namespace: dict = {}
    exec(checks.DJANGO_Q_SETTING, namespace)
    settings.Q_CLUSTER = namespace["Q_CLUSTER"]

    assert checks.check_django_q() == []


def test_django_q__a_cluster_without_broker_warns(settings):
    settings.Q_CLUSTER = {"name": "site", "timeout": 300, "retry": 360}

    assert [m.id for m in checks.check_django_q()] == ["tachycore.W004"]


@pytest.mark.django_db
def test_not_added__a_plugin_the_registry_does_not_know_is_a_warning_with_the_command():
    plugin_manager.enable("kv", "jobs")  # the built-ins; the demo's notes and audit are not added

    found = {message.msg.split("'")[1]: message for message in checks.check_not_added(databases=["default"])}

    assert set(found) == {"audit", "bluegreen", "notes"}
    assert found["notes"].id == "tachycore.W003"
    assert found["notes"].hint == "Run: manage.py pm enable notes"


@pytest.mark.django_db
def test_not_added__an_added_plugin_is_no_longer_named():
    plugin_manager.enable("notes")  # and audit, which it depends on
    plugin_manager.disable("notes")  # disabled is a choice, not an oversight

    names = {message.msg.split("'")[1] for message in checks.check_not_added(databases=["default"])}

    assert "notes" not in names and "audit" not in names


@pytest.mark.django_db
def test_not_added__is_a_database_check_run_by_check_database(capsys):
    call_command("check")
    assert "tachycore.W003" not in capsys.readouterr().err

    call_command("check", databases=["default"])
    assert "tachycore.W003" in capsys.readouterr().err


@pytest.mark.django_db
def test_not_added__a_web_process_logs_it_at_start(caplog):
    with caplog.at_level(logging.WARNING, logger="tachycore.plugins"):
        process_started.send(sender=None, kind="web", node_id="n")

    assert any("plugin 'notes'" in r.getMessage() and "manage.py pm enable notes" in r.getMessage()
               for r in caplog.records)


def _json_registry(settings, path) -> None:
    settings.TACHYCORE = {**getattr(settings, "TACHYCORE", {}), "REGISTRY": {
        "BACKEND": "tachycore.registry.JSONFileRegistry", "OPTIONS": {"PATH": path}}}


@pytest.mark.parametrize("path", ["plugins.json", "var/lib/plugins.json", "~/plugins.json"])
def test_registry__a_relative_json_file_path_is_an_error_with_the_fix(settings, path):
    _json_registry(settings, path)

    messages = checks.check_registry()

    assert [m.id for m in messages] == ["tachycore.E005"]
    assert repr(path) in messages[0].msg and "absolute PATH" in messages[0].msg
    assert 'BASE_DIR / "plugins.json"' in messages[0].hint


def test_registry__an_absolute_json_file_path_passes(settings, tmp_path):
    _json_registry(settings, str(tmp_path / "plugins.json"))

    assert checks.check_registry() == []


def test_registry__a_relative_path_stops_manage_py_check(settings):
    from django.core.management.base import SystemCheckError

    _json_registry(settings, "plugins.json")

    with pytest.raises(SystemCheckError, match="tachycore.E005"):
        call_command("check")


@pytest.fixture
def bad_row(db):
    from tachycore.models import ApplicationPlugin

    return ApplicationPlugin.objects.create(name="bad/name", enabled=True)


def test_registry_records__a_row_with_a_bad_name_is_a_warning_saying_how_to_remove_it(bad_row):
    messages = checks.check_registry_records(databases=["default"])

    assert [m.id for m in messages] == ["tachycore.W005"]
    assert "'bad/name'" in messages[0].msg and "skipped" in messages[0].msg
    assert "delete" in messages[0].hint and "applicationPlugins" in messages[0].hint


def test_registry_records__is_a_database_check_run_by_check_database(bad_row, capsys):
    call_command("check")
    assert "tachycore.W005" not in capsys.readouterr().err

    call_command("check", databases=["default"])
    assert "tachycore.W005" in capsys.readouterr().err


@pytest.mark.django_db
def test_registry_records__valid_rows_pass():
    plugin_manager.enable("notes")

    assert checks.check_registry_records(databases=["default"]) == []


def test_plugins__a_plugin_named_outside_the_name_rule_is_not_loaded_and_warned(monkeypatch):
    from tachycore.discovery import discover_plugins
    from tests.plugin_apps.toolbox.plugin import ToolboxPlugin

    monkeypatch.setattr(ToolboxPlugin, "name", "tool/box")

    found = discover_plugins()

    assert "tool/box" not in found.plugins
    assert [(label, problem.split(":")[0]) for label, problem in found.problems] == [
        ("toolbox", "plugin name 'tool/box' is invalid")]


# -- governance --------------------------------------------------------------------------------


def test_governance__the_test_sites_grants_and_plugins_pass():
    assert checks.check_governance() == []


@pytest.mark.parametrize(("grants", "says"), [
    (["notes"], "must map plugin names"),
    ({"notes": "WRITE"}, "must map plugin names"),
    ({"notes": {"kv": "ALL"}}, 'TACHYCORE["GRANTS"]["notes"]: access must be one of READ, WRITE, EXECUTE'),
    ({"notes": {"KV": "READ"}}, 'TACHYCORE["GRANTS"]["notes"]: a capability is a family'),
])
def test_governance__bad_settings_grants_are_an_error(settings, grants, says):
    settings.TACHYCORE = {**settings.TACHYCORE, "GRANTS": grants}

    [(check_id, message, _)] = _ids_and_hints(checks.check_governance())

    assert check_id == "tachycore.E006"
    assert says in message


def test_governance__a_plugin_asking_in_a_bad_way_is_an_error(monkeypatch):
    monkeypatch.setattr(plugin_manager.plugins["notes"], "capabilities", {"jobs:enqueue": "RUN"})

    [(check_id, message, hint)] = _ids_and_hints(checks.check_governance())

    assert check_id == "tachycore.E007"
    assert message.startswith("plugin 'notes': capabilities: access must be one of")
    assert "NotesPlugin.capabilities" in hint


@pytest.mark.parametrize(("debug", "warned"), [(False, True), (True, False)])
def test_governance__audit_mode_with_debug_off_is_a_warning(settings, debug, warned):
    settings.DEBUG = debug
    settings.TACHYCORE = {**settings.TACHYCORE, "GOVERNANCE": "audit"}

    ids = [message.id for message in checks.check_governance()]

    assert ids == (["tachycore.W040"] if warned else [])
