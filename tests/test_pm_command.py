"""``manage.py pm`` as users run it: output, stored rows, exit status and messages."""

from __future__ import annotations

import io
import json
import os
import re
import stat

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from demo.audit.models import AuditEvent
from demo.notes.models import Note
from demo.notes.plugin import WELCOME_TITLE, NotesPlugin
from tachycore.models import ApplicationPlugin
from tachycore.registry.validation import MAX_OPTIONS_DEPTH
from tests.helpers.processes import manage


def pm(*args: str) -> str:
    """Run ``manage.py pm`` in this process; return what it printed."""
    out = io.StringIO()
    call_command("pm", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def registry_rows() -> list[dict]:
    """Every registry row, every column: equal snapshots mean nothing was written."""
    return list(ApplicationPlugin.objects.order_by("name").values())


def row(name: str) -> ApplicationPlugin:
    return ApplicationPlugin.objects.get(name=name)


def parse_table(output: str) -> dict[str, dict[str, str]]:
    """The rows of ``pm list`` by plugin name, each as ``{column: cell}``."""
    lines = output.splitlines()
    header = lines[0]
    found = list(re.finditer(r"\S+(?: \S+)*", header))  # columns are 2+ spaces apart
    columns = [match.group() for match in found]
    starts = [match.start() for match in found]
    table = {}
    for line in lines[1:]:
        if not line.strip() or ": last error: " in line:
            continue
        cells = [
            line[start:end].strip() for start, end in zip(starts, [*starts[1:], None], strict=True)
        ]
        table[cells[0]] = dict(zip(columns, cells, strict=True))
    return table


def assert_refused(env: dict[str, str], *args: str, says: tuple[str, ...]) -> str:
    """``manage.py pm <args>`` in a new process exits 1 with a one-line message and writes nothing."""
    before = registry_rows()
    events_before = AuditEvent.objects.count()
    result = manage(env, "pm", *args)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, result.stderr
    for text in says:
        assert text in message
    assert result.stdout == ""
    assert registry_rows() == before
    assert AuditEvent.objects.count() == events_before
    return message


@pytest.fixture
def ghost(db) -> ApplicationPlugin:
    """A registry row whose package is not installed (it was uninstalled with pip)."""
    return ApplicationPlugin.objects.create(
        name="ghost",
        package_name="ghost_plugin",
        version="0.3.0",
        enabled=True,
        installed=True,
    )


# -- pm list ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list__fresh_site_shows_discovered_plugins_not_added_and_built_in_enabled():
    table = parse_table(pm("list"))

    # other apps of the site may bring plugins of their own: check the demo's and the test's
    assert {"audit", "notes", "toolbox"} <= set(table)
    assert table["toolbox"]["STATUS"] == "enabled"
    assert table["toolbox"]["BUILT-IN"] == "yes"
    assert table["toolbox"]["VERSION"] == "2.0.0"
    assert table["notes"]["STATUS"] == "not added"
    assert table["notes"]["DEPENDS ON"] == "audit"
    assert table["notes"]["PACKAGE"] == "demo.notes"
    assert table["audit"]["STATUS"] == "not added"


@pytest.mark.django_db
def test_list__shows_added_enabled_and_disabled(ghost):
    pm("enable", "notes")
    pm("disable", "notes")
    pm("remove", "audit", "--force")
    pm("add", "audit")

    table = parse_table(pm("list"))

    assert table["notes"]["STATUS"] == "disabled"
    assert table["audit"]["STATUS"] == "added"
    assert table["toolbox"]["STATUS"] == "enabled"
    assert table["ghost"]["STATUS"] == "missing"


@pytest.mark.django_db
def test_list__json_has_one_object_per_plugin_sorted_by_name(ghost):
    pm("add", "audit")

    data = json.loads(pm("list", "--json"))

    names = [item["name"] for item in data]
    assert names == sorted(set(names))
    by_name = {item["name"]: item for item in data}
    assert {name: by_name[name]["status"] for name in ("audit", "ghost", "notes", "toolbox")} == {
        "audit": "added",
        "ghost": "missing",
        "notes": "not added",
        "toolbox": "enabled",
    }
    notes = by_name["notes"]
    assert notes["version"] == "1.0.0"
    assert notes["package_name"] == "demo.notes"
    assert notes["depends_on"] == ["audit"]
    assert notes["added"] is False
    assert notes["enabled"] is False
    assert notes["missing"] is False
    assert notes["options"] == {"page_size": 20}
    assert notes["urls"] == "demo.notes.urls"
    assert by_name["audit"]["dependents"] == ["notes"]
    assert by_name["audit"]["added"] is True
    assert by_name["audit"]["installed"] is False
    assert by_name["toolbox"]["built_in"] is True
    assert by_name["toolbox"]["installed"] is True
    assert by_name["toolbox"]["installed_version"] == "2.0.0"
    assert by_name["toolbox"]["upgradable"] is False
    assert by_name["ghost"]["missing"] is True
    assert by_name["ghost"]["version"] == "0.3.0"
    assert by_name["ghost"]["package_name"] == "ghost_plugin"


@pytest.mark.django_db
def test_list__shows_pending_upgrade(monkeypatch):
    pm("install", "notes")
    monkeypatch.setattr(NotesPlugin, "version", "1.1.0")

    table = parse_table(pm("list"))
    data = {item["name"]: item for item in json.loads(pm("list", "--json"))}

    assert table["notes"]["VERSION"] == "1.0.0 -> 1.1.0"
    assert data["notes"]["upgradable"] is True
    assert data["notes"]["installed_version"] == "1.0.0"


@pytest.mark.django_db
def test_list__shows_last_error():
    pm("enable", "notes")
    pm("disable", "notes")
    ApplicationPlugin.objects.filter(name="notes").update(last_error="hook install() failed: boom")

    output = pm("list")

    assert parse_table(output)["notes"]["STATUS"] == "disabled (error)"
    assert "notes: last error: hook install() failed: boom" in output.splitlines()


# -- pm add / install ------------------------------------------------------------------------


@pytest.mark.django_db
def test_add__records_plugin_neither_installed_nor_enabled():
    assert pm("add", "notes").strip() == "Added notes."

    notes = row("notes")
    assert (notes.enabled, notes.installed, notes.built_in) == (False, False, False)
    assert notes.package_name == "demo.notes"
    assert notes.version == "1.0.0"
    assert not Note.objects.exists()  # install() did not run


@pytest.mark.django_db
def test_add__stores_options():
    pm("add", "notes", "--options", '{"page_size": 5}')

    assert row("notes").options == {"page_size": 5}


@pytest.mark.django_db
def test_add__twice_is_refused():
    pm("add", "notes")
    before = registry_rows()

    with pytest.raises(CommandError, match="'notes' is already added"):
        pm("add", "notes")
    assert registry_rows() == before


@pytest.mark.django_db
def test_install__marks_installed_and_runs_install_hook():
    assert pm("install", "notes").strip() == "Installed notes."

    notes = row("notes")
    assert notes.installed is True
    assert notes.enabled is False
    assert list(Note.objects.values_list("title", flat=True)) == [WELCOME_TITLE]


@pytest.mark.django_db
def test_install__twice_creates_the_welcome_note_once():
    pm("install", "notes")
    assert pm("install", "notes").strip() == "Installed notes."

    assert Note.objects.filter(title=WELCOME_TITLE).count() == 1
    assert ApplicationPlugin.objects.filter(name="notes").count() == 1


@pytest.mark.django_db
def test_install__again_after_remove_keeps_one_welcome_note():
    pm("install", "notes")
    pm("remove", "notes")
    pm("install", "notes")  # install() runs a second time on the kept tables

    assert row("notes").installed is True
    assert Note.objects.filter(title=WELCOME_TITLE).count() == 1


# -- pm enable / disable ---------------------------------------------------------------------


@pytest.mark.django_db
def test_enable__enables_dependency_first_and_prints_both():
    assert pm("enable", "notes").strip() == "Enabled audit, notes."

    for name in ("audit", "notes"):
        assert row(name).enabled is True
        assert row(name).installed is True
    events = list(AuditEvent.objects.order_by("id").values_list("plugin", "event"))
    assert events == [("audit", "enabled"), ("notes", "enabled")]
    assert Note.objects.filter(title=WELCOME_TITLE).count() == 1


@pytest.mark.django_db
def test_enable__already_enabled_says_so_and_runs_no_hooks():
    pm("enable", "notes")
    events = AuditEvent.objects.count()

    assert pm("enable", "notes").strip() == "Already enabled: notes."
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
def test_enable__stores_options():
    pm("enable", "notes", "--options", '{"page_size": 7}')

    assert row("notes").options == {"page_size": 7}
    assert row("notes").enabled is True


@pytest.mark.django_db
def test_disable__dependent_and_dependency_in_one_call():
    pm("enable", "notes")

    assert pm("disable", "notes", "audit").strip() == "Disabled notes, audit."

    assert row("notes").enabled is False
    assert row("audit").enabled is False
    assert row("notes").installed is True
    assert AuditEvent.objects.filter(plugin="notes", event="disabled").count() == 1


@pytest.mark.django_db
def test_disable__order_of_names_does_not_matter():
    pm("enable", "notes")

    assert pm("disable", "audit", "notes").strip() == "Disabled notes, audit."
    assert not ApplicationPlugin.objects.filter(name__in=["notes", "audit"], enabled=True).exists()


@pytest.mark.django_db
def test_disable__already_disabled_says_so():
    pm("enable", "notes")
    pm("disable", "notes")

    assert pm("disable", "notes").strip() == "Already disabled: notes."


@pytest.mark.django_db
def test_disable__not_added_plugin_is_refused():
    before = registry_rows()

    with pytest.raises(CommandError, match="'notes': it is not added"):
        pm("disable", "notes")
    assert registry_rows() == before


# -- pm upgrade ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_upgrade__stores_new_version_and_runs_hook_with_old_version(monkeypatch):
    pm("enable", "notes")
    calls = []
    monkeypatch.setattr(NotesPlugin, "version", "1.1.0")
    monkeypatch.setattr(
        NotesPlugin, "upgrade", lambda self, from_version: calls.append(from_version)
    )

    assert pm("upgrade", "notes").strip() == "Upgraded notes from 1.0.0 to 1.1.0."

    assert row("notes").version == "1.1.0"
    assert row("notes").enabled is True
    assert calls == ["1.0.0"]


@pytest.mark.django_db
def test_upgrade__at_current_version_changes_nothing():
    pm("install", "notes")
    before = registry_rows()

    assert pm("upgrade", "notes").strip() == "notes is already at version 1.0.0."
    assert registry_rows() == before


@pytest.mark.django_db
def test_upgrade__not_installed_is_refused(monkeypatch):
    pm("add", "notes")
    monkeypatch.setattr(NotesPlugin, "version", "1.1.0")

    with pytest.raises(CommandError, match="not installed"):
        pm("upgrade", "notes")
    assert row("notes").version == "1.0.0"


# -- pm remove -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_remove__force_disables_then_deletes_row_and_keeps_data():
    pm("enable", "notes")

    assert pm("remove", "notes", "--force").strip() == "Removed notes."

    assert not ApplicationPlugin.objects.filter(name="notes").exists()
    assert row("audit").enabled is True
    assert AuditEvent.objects.filter(plugin="notes", event="disabled").count() == 1
    assert Note.objects.filter(title=WELCOME_TITLE).count() == 1  # tables stay


@pytest.mark.django_db
def test_remove__disabled_plugin_needs_no_force():
    pm("enable", "notes")
    pm("disable", "notes")

    assert pm("remove", "notes").strip() == "Removed notes."
    assert not ApplicationPlugin.objects.filter(name="notes").exists()


@pytest.mark.django_db
def test_remove__force_on_a_needed_dependency_is_refused():
    pm("enable", "notes")
    before = registry_rows()

    with pytest.raises(CommandError, match="notes"):
        pm("remove", "audit", "--force")
    assert registry_rows() == before


# -- refusals, as a user sees them in a shell ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "args",
    [
        ("add", "nosuch"),
        ("install", "nosuch"),
        ("enable", "nosuch"),
        ("enable", "notes", "nosuch"),
        ("disable", "nosuch"),
        ("upgrade", "nosuch"),
        ("remove", "nosuch"),
    ],
)
def test_refused__unknown_plugin(subprocess_env, args):
    message = assert_refused(subprocess_env, *args, says=("nosuch",))
    assert "unknown plugin" in message


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "args",
    [
        ("enable", "notes", "--options", "[1]"),
        ("enable", "notes", "--options", "{bad"),
        ("add", "notes", "--options", "[1]"),
        ("add", "notes", "--options", "{bad"),
    ],
)
def test_refused__options_not_a_json_object(subprocess_env, args):
    assert_refused(subprocess_env, *args, says=("--options",))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["enable", "add"])
def test_refused__options_rejected_by_plugin(subprocess_env, action):
    assert_refused(
        subprocess_env,
        action,
        "notes",
        "--options",
        '{"page_size": 0}',
        says=("notes", "page_size"),
    )
    assert not Note.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_refused__options_rejected_by_plugin_already_added(subprocess_env):
    pm("add", "notes", "--options", '{"page_size": 5}')

    assert_refused(
        subprocess_env, "enable", "notes", "--options", '{"page_size": 1000}', says=("page_size",)
    )
    assert row("notes").options == {"page_size": 5}


@pytest.mark.django_db(transaction=True)
def test_refused__disable_dependency_of_enabled_plugin(subprocess_env):
    pm("enable", "notes")

    message = assert_refused(subprocess_env, "disable", "audit", says=("audit", "notes"))
    assert "depend" in message
    assert row("audit").enabled is True


@pytest.mark.django_db(transaction=True)
def test_refused__remove_enabled_plugin_without_force(subprocess_env):
    pm("enable", "notes")

    assert_refused(subprocess_env, "remove", "notes", says=("notes", "--force"))
    assert row("notes").enabled is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("force", [(), ("--force",)])
def test_refused__remove_built_in_plugin(subprocess_env, force):
    assert_refused(subprocess_env, "remove", "toolbox", *force, says=("toolbox", "built in"))


@pytest.mark.django_db(transaction=True)
def test_refused__disable_built_in_plugin(subprocess_env):
    assert_refused(subprocess_env, "disable", "toolbox", says=("toolbox", "built in", "cannot be disabled"))
    assert row("toolbox").enabled is True


@pytest.mark.django_db(transaction=True)
def test_refused__missing_subcommand_name(subprocess_env):
    before = registry_rows()
    result = manage(subprocess_env, "pm", "enable")

    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert registry_rows() == before


# -- a plugin whose package is gone ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_missing_package__site_still_passes_check(subprocess_env, ghost):
    pm("enable", "notes")

    result = manage(subprocess_env, "check")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db
def test_missing_package__other_plugins_still_serve(client, ghost):
    pm("enable", "notes")

    response = client.get("/api/notes/")

    assert response.status_code == 200
    assert [note["title"] for note in response.json()] == [WELCOME_TITLE]


@pytest.mark.django_db
def test_missing_package__listed_as_missing(ghost):
    table = parse_table(pm("list"))

    assert table["ghost"]["STATUS"] == "missing"
    assert table["ghost"]["VERSION"] == "0.3.0"
    assert table["ghost"]["PACKAGE"] == "ghost_plugin"


@pytest.mark.django_db(transaction=True)
def test_missing_package__enable_is_refused(subprocess_env, ghost):
    assert_refused(subprocess_env, "enable", "ghost", says=("ghost", "package is missing"))


@pytest.mark.django_db(transaction=True)
def test_missing_package__disable_then_remove(subprocess_env, ghost):
    disabled = manage(subprocess_env, "pm", "disable", "ghost")

    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == "Disabled ghost."
    assert row("ghost").enabled is False

    removed = manage(subprocess_env, "pm", "remove", "ghost")

    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == "Removed ghost."
    assert not ApplicationPlugin.objects.filter(name="ghost").exists()
    assert row("toolbox").enabled is True


def test_usage__without_an_action_names_every_action(subprocess_env):
    result = manage(subprocess_env, "pm")

    assert result.returncode == 2
    assert "{list,add,install,enable,disable,reload,upgrade,remove,grant,revoke,grants}" in result.stderr.splitlines()[-1]


@pytest.mark.django_db(transaction=True)
def test_refused__disable_jobs_says_how_to_turn_it_off(subprocess_env):
    message = assert_refused(subprocess_env, "disable", "jobs", says=("jobs", "built in"))
    assert "JOBS_DISABLED=true" in message


# -- options nested too deeply ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", ["enable", "add"])
@pytest.mark.parametrize("options", [
    pytest.param("[" * 100_000, id="100k-deep-array"),  # one argument holds at most 128 KiB
    pytest.param('{"a":' * 20_000 + "1" + "}" * 20_000, id="20k-deep-object"),
    pytest.param('{"a":' * 101 + "1" + "}" * 101, id="101-deep"),
])
def test_refused__options_nested_deeper_than_the_limit(subprocess_env, action, options):
    assert_refused(subprocess_env, action, "notes", "--options", options,
                   says=("--options", f"more than {MAX_OPTIONS_DEPTH} levels"))


@pytest.mark.django_db
def test_options__nested_up_to_the_limit_are_stored():
    deep: dict = {"a": 1}
    for _ in range(MAX_OPTIONS_DEPTH - 2):
        deep = {"a": deep}
    options = {"page_size": 5, "deep": deep}  # the outer object is the 100th level

    pm("add", "notes", "--options", json.dumps(options))

    assert row("notes").options == options


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("options", "says"), [
    pytest.param('{"page_size": 5, "x": NaN}', "NaN", id="nan"),
    pytest.param('{"page_size": 5, "x": Infinity}', "Infinity", id="infinity"),
    pytest.param('{"page_size": 5, "x": "\\u0000"}', "NUL", id="nul"),
    pytest.param('{"page_size": 5, "x": "\\ud800"}', "surrogate", id="lone-surrogate"),
])
def test_refused__options_no_database_can_store(subprocess_env, options, says):
    assert_refused(subprocess_env, "enable", "notes", "--options", options, says=(says,))


# -- the JSON file registry -----------------------------------------------------------------------


def _json_registry_env(env: dict[str, str], path) -> dict[str, str]:
    return {**env, "TACHYCORE_REGISTRY": json.dumps(
        {"BACKEND": "tachycore.registry.JSONFileRegistry", "OPTIONS": {"PATH": str(path)}})}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args", [("list",), ("list", "--json"), ("enable", "notes"), ("disable", "audit")])
@pytest.mark.parametrize(("content", "says"), [
    pytest.param(b'{"version": 1, "plugins": [{"name": "audit", "enabled": "no"}]}',
                 "plugins[0]: field 'enabled' of plugin 'audit' must be true or false, got 'no'",
                 id="enabled-no"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nests too deeply", id="100k-deep"),
    pytest.param(b'{"version": 1, "plugins": [{"name": "\xff"}]}', "not UTF-8", id="invalid-utf8"),
    pytest.param(b'{"version": 1, "plugins": [{"name": "bad/name"}]}', "invalid plugin name 'bad/name'",
                 id="bad-name"),
])
def test_json_registry__a_bad_file_is_one_line_and_exit_1(subprocess_env, tmp_path, args, content, says):
    path = tmp_path / "plugins.json"
    path.write_bytes(content)

    result = manage(_json_registry_env(subprocess_env, path), "pm", *args)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"CommandError: the plugin registry {path} is not valid: "
                                                  + result.stderr.split(" is not valid: ", 1)[1].strip()]
    assert says in result.stderr
    assert result.stdout == ""
    assert path.read_bytes() == content


@pytest.mark.django_db(transaction=True)
def test_json_registry__a_symbolic_link_is_refused_in_one_line(subprocess_env, tmp_path):
    target = tmp_path / "real.json"
    target.write_text('{"version": 1, "plugins": []}', encoding="utf-8")
    path = tmp_path / "plugins.json"
    path.symlink_to(target)

    result = manage(_json_registry_env(subprocess_env, path), "pm", "enable", "notes")

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(path) in result.stderr and "symbolic link" in result.stderr
    assert target.read_text(encoding="utf-8") == '{"version": 1, "plugins": []}'


@pytest.mark.django_db(transaction=True)
def test_json_registry__a_relative_path_stops_every_command_with_the_check(subprocess_env):
    env = {**subprocess_env, "TACHYCORE_REGISTRY": json.dumps(
        {"BACKEND": "tachycore.registry.JSONFileRegistry", "OPTIONS": {"PATH": "plugins.json"}})}

    result = manage(env, "pm", "list")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "tachycore.E005" in result.stderr and "absolute PATH" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_json_registry__pm_keeps_the_mode_of_the_file(subprocess_env, tmp_path):
    path = tmp_path / "plugins.json"
    env = _json_registry_env(subprocess_env, path)
    assert manage(env, "pm", "add", "audit").returncode == 0
    os.chmod(path, 0o644)

    result = manage(env, "pm", "enable", "notes")

    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


# -- a registry row no plugin may have -------------------------------------------------------------


@pytest.fixture
def bad_row(db) -> ApplicationPlugin:
    """A row put into the table by hand, with a name the plugin manager refuses."""
    return ApplicationPlugin.objects.create(name="bad/name", package_name="bad", version="1.0",
                                            enabled=True, installed=True)


@pytest.mark.django_db(transaction=True)
def test_bad_row__pm_list_works_and_warns_about_it(subprocess_env, bad_row):
    result = manage(subprocess_env, "pm", "list")

    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    table = parse_table(result.stdout)
    assert "bad/name" not in table
    assert table["kv"]["STATUS"] == "enabled" and table["notes"]["STATUS"] == "not added"
    assert "warning: registry row 'bad/name' skipped" in result.stderr
    assert "invalid plugin name 'bad/name'" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_bad_row__pm_list_json_stays_json(subprocess_env, bad_row):
    result = manage(subprocess_env, "pm", "list", "--json")

    assert result.returncode == 0, result.stderr
    names = [plugin["name"] for plugin in json.loads(result.stdout)]
    assert "bad/name" not in names and "kv" in names
    assert "'bad/name'" in result.stderr


@pytest.mark.django_db
def test_bad_row__other_plugins_are_enabled_and_the_row_is_left_alone(bad_row):
    pm("enable", "notes")

    assert row("notes").enabled is True
    assert row("bad/name").enabled is True


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args", [("remove", "bad/name"), ("disable", "bad/name"), ("add", "bad/name")])
def test_bad_row__commands_naming_it_are_refused(subprocess_env, bad_row, args):
    before = registry_rows()

    result = manage(subprocess_env, "pm", *args)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("CommandError: invalid plugin name 'bad/name'")
    assert registry_rows() == before
