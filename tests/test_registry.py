"""The contract of the plugin registry (``BasePluginRegistry``), run against every driver,
then what only the dual-write driver, the JSON file driver and the loader promise.

Like Django's session tests, one suite serves every backend: the ``store`` fixture
is parametrised over the drivers, and each contract test runs once per driver.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tachycore.errors import (
    InvalidPluginName,
    InvalidRecord,
    InvalidRegistryFile,
    PluginAlreadyExists,
    PluginError,
    PluginNotFound,
    RegistryConfigurationError,
    RegistryError,
    RegistryFlushError,
    RegistryPathError,
)
from tachycore.registry import (
    BasePluginRegistry,
    DatabaseRegistry,
    DualWriteRegistry,
    JSONFileRegistry,
    MemoryRegistry,
    PluginRecord,
    load_registry,
)
from tachycore.registry.validation import MAX_OPTIONS_DEPTH
from tests.helpers.processes import ROOT, wait_until

# -- drivers -------------------------------------------------------------------------------


@dataclasses.dataclass
class Store:
    """A driver under test, and how to open a second driver on the same store (or ``None``)."""

    registry: BasePluginRegistry
    reopen: Callable[[], BasePluginRegistry] | None


def _empty_database_registry() -> DatabaseRegistry:
    # migrate records the built-in plugins: start each test from an empty table
    # (inside the test's transaction, rolled back after it)
    registry = DatabaseRegistry()
    for record in registry.list():
        registry.remove(record.name)
    return registry


def _base_store(kind: str, path: Path) -> Store:
    if kind == "memory":
        return Store(MemoryRegistry(), None)
    if kind == "database":
        return Store(_empty_database_registry(), DatabaseRegistry)
    if kind == "jsonfile":
        return Store(JSONFileRegistry(path), lambda: JSONFileRegistry(path))
    raise AssertionError(kind)


def _driver_params(*kinds: str) -> list:
    # the database drivers carry the django_db mark (what the ``db`` fixture gives) so that
    # pytest-django sets up the test database even when only they are selected
    return [pytest.param(kind, id=kind, marks=[pytest.mark.django_db] if "database" in kind else [])
            for kind in kinds]


DRIVERS = _driver_params("memory", "database", "jsonfile",
                         "dualwrite-memory", "dualwrite-database", "dualwrite-jsonfile")


@pytest.fixture(params=DRIVERS)
def store(request, tmp_path) -> Store:
    kind = request.param
    path = tmp_path / "plugins.json"
    if not kind.startswith("dualwrite-"):
        return _base_store(kind, path)
    persistent = _base_store(kind.removeprefix("dualwrite-"), path).registry
    return Store(DualWriteRegistry(persistent=persistent), lambda: DualWriteRegistry(persistent=persistent))


@pytest.fixture
def registry(store: Store) -> BasePluginRegistry:
    return store.registry


@pytest.fixture(params=_driver_params("memory", "database", "jsonfile"))
def persistent(request, tmp_path) -> BasePluginRegistry:
    """A persistent driver for the dual-write driver, written to directly as another writer would."""
    return _base_store(request.param, tmp_path / "plugins.json").registry


class FlakyRegistry(MemoryRegistry):
    """A persistent driver whose writes raise ``RegistryError`` the first ``failures`` times."""

    def __init__(self, records: list[PluginRecord] | None = None, failures: float = 0) -> None:
        super().__init__(records)
        self.failures = failures
        self.write_attempts = 0

    def _write_attempt(self) -> None:
        self.write_attempts += 1
        if self.failures > 0:
            self.failures -= 1
            raise RegistryError("the persistent store is unavailable")

    def add(self, record: PluginRecord) -> PluginRecord:
        self._write_attempt()
        return super().add(record)

    def update(self, name: str, **changes) -> PluginRecord:
        self._write_attempt()
        return super().update(name, **changes)

    def remove(self, name: str) -> None:
        self._write_attempt()
        super().remove(name)

    def restore(self, name: str, record: PluginRecord | None) -> None:
        self._write_attempt()
        super().restore(name, record)


class UnreadableRegistry(MemoryRegistry):
    """A persistent driver whose ``list`` and ``get`` raise once ``broken`` is set."""

    broken = False

    def list(self) -> list[PluginRecord]:
        if self.broken:
            raise RegistryError("the persistent store is unreadable")
        return super().list()

    def get(self, name: str) -> PluginRecord | None:
        if self.broken:
            raise RegistryError("the persistent store is unreadable")
        return super().get(name)


@pytest.fixture
def flaky():
    """Build ``FlakyRegistry`` drivers; they recover at the end of the test, so the
    dual-write drivers over them flush quietly at exit."""
    made: list[FlakyRegistry] = []

    def make(records: list[PluginRecord] | None = None, failures: float = 0) -> FlakyRegistry:
        made.append(FlakyRegistry(records, failures))
        return made[-1]

    yield make
    for driver in made:
        driver.failures = 0


def _audit(**fields) -> PluginRecord:
    values = {"package_name": "demo.audit", "version": "1.0.0", "options": {"level": 1}} | fields
    return PluginRecord(name="audit", **values)


def _without_updated(record: PluginRecord | None) -> dict | None:
    """The record's fields but ``updated`` (a write moves it, even a restore)."""
    if record is None:
        return None
    return {key: value for key, value in dataclasses.asdict(record).items() if key != "updated"}


def _stored_fields(record: PluginRecord) -> dict:
    """The record's fields but its timestamps."""
    return {key: value for key, value in dataclasses.asdict(record).items()
            if key not in ("created", "updated")}


# -- add / get -----------------------------------------------------------------------------


def test_add__then_get_returns_the_stored_fields(registry):
    registry.add(PluginRecord(
        name="audit", package_name="demo.audit", version="1.2.0", enabled=True, installed=True,
        built_in=True, options={"level": 2}, last_error="boom",
    ))

    record = registry.get("audit")

    assert (record.name, record.package_name, record.version, record.enabled, record.installed,
            record.built_in, record.options, record.last_error) == (
        "audit", "demo.audit", "1.2.0", True, True, True, {"level": 2}, "boom")


def test_add__sets_created_and_updated_to_now(registry):
    before = timezone.now()
    registry.add(_audit())
    after = timezone.now()

    record = registry.get("audit")

    assert before <= record.created <= after
    assert before <= record.updated <= after


def test_add__returns_the_stored_record(registry):
    added = registry.add(_audit())

    assert added == registry.get("audit")


def test_add__existing_name_raises_plugin_already_exists(registry):
    registry.add(_audit())

    with pytest.raises(PluginAlreadyExists, match="audit"):
        registry.add(_audit(version="2.0.0"))


def test_add__existing_name_leaves_the_stored_record_unchanged(registry):
    registry.add(_audit())
    stored = registry.get("audit")

    with pytest.raises(PluginAlreadyExists):
        registry.add(_audit(version="2.0.0", enabled=True, options={"level": 9}))

    assert registry.get("audit") == stored
    assert registry.list() == [stored]


def test_get__unknown_name_is_none(registry):
    registry.add(_audit())

    assert registry.get("notes") is None


# -- list ----------------------------------------------------------------------------------


def test_list__sorted_by_name(registry):
    for name in ["notes", "audit_trail", "audit", "zeta", "audit-log", "auditor"]:
        registry.add(PluginRecord(name=name))

    assert [record.name for record in registry.list()] == [
        "audit", "audit-log", "audit_trail", "auditor", "notes", "zeta",
    ]


def test_list__new_store_is_empty(registry):
    assert registry.list() == []


# -- update --------------------------------------------------------------------------------


def test_update__changes_only_the_named_fields(registry):
    registry.add(_audit(last_error="boom"))
    before = registry.get("audit")

    registry.update("audit", enabled=True, options={"level": 2})

    after = registry.get("audit")
    assert _without_updated(after) == _without_updated(
        dataclasses.replace(before, enabled=True, options={"level": 2}))


def test_update__moves_updated_and_keeps_created(registry):
    registry.add(_audit())
    before = registry.get("audit")
    time.sleep(0.01)

    registry.update("audit", enabled=True)

    after = registry.get("audit")
    assert after.updated > before.updated
    assert after.created == before.created


def test_update__returns_the_stored_record(registry):
    registry.add(_audit())

    updated = registry.update("audit", installed=True, version="1.1.0")

    assert updated == registry.get("audit")


def test_update__unknown_name_raises_plugin_not_found(registry):
    registry.add(_audit())

    with pytest.raises(PluginNotFound, match="notes"):
        registry.update("notes", enabled=True)


@pytest.mark.parametrize("changes", [
    pytest.param({"bogus": 1}, id="unknown-field"),
    pytest.param({"created": datetime(2020, 1, 1, tzinfo=UTC)}, id="created"),
    pytest.param({"updated": datetime(2020, 1, 1, tzinfo=UTC)}, id="updated"),
    pytest.param({"enabled": True, "bogus": 1}, id="valid-and-unknown-field"),
    pytest.param({"options": ["not", "a", "dict"]}, id="options-not-a-dict"),
])
def test_update__refused_field_raises_value_error(registry, changes):
    registry.add(_audit())

    with pytest.raises(ValueError, match="audit"):
        registry.update("audit", **changes)


@pytest.mark.parametrize("changes", [
    pytest.param({"bogus": 1}, id="unknown-field"),
    pytest.param({"enabled": True, "bogus": 1}, id="valid-and-unknown-field"),
    pytest.param({"options": ["not", "a", "dict"]}, id="options-not-a-dict"),
])
def test_update__refused_field_stores_nothing(registry, changes):
    registry.add(_audit())
    version = registry.version()
    stored = registry.get("audit")

    with pytest.raises(ValueError):
        registry.update("audit", **changes)

    assert registry.list() == [stored]
    assert registry.version() == version


# -- remove --------------------------------------------------------------------------------


def test_remove__then_get_is_none(registry):
    registry.add(_audit())
    registry.add(PluginRecord(name="notes"))

    registry.remove("audit")

    assert registry.get("audit") is None
    assert [record.name for record in registry.list()] == ["notes"]


def test_remove__unknown_name_raises_plugin_not_found(registry):
    registry.add(_audit())

    with pytest.raises(PluginNotFound, match="notes"):
        registry.remove("notes")

    assert [record.name for record in registry.list()] == ["audit"]


# -- version -------------------------------------------------------------------------------


def test_version__grows_on_every_write(registry):
    snapshot = _audit()
    writes = [
        lambda: registry.add(_audit()),
        lambda: registry.update("audit", enabled=True),
        lambda: registry.restore("audit", snapshot),
        lambda: registry.remove("audit"),
        lambda: registry.restore("audit", snapshot),
        lambda: registry.restore("audit", None),
    ]
    versions = [registry.version()]
    for write in writes:
        write()
        versions.append(registry.version())

    assert versions == sorted(set(versions)), f"not strictly increasing: {versions}"


def test_version__does_not_move_on_reads(registry):
    registry.add(_audit())
    version = registry.version()

    registry.list()
    registry.get("audit")
    registry.get("notes")

    assert registry.version() == version
    assert registry.version() == version


def test_version__does_not_move_on_a_refused_write(registry):
    registry.add(_audit())
    version = registry.version()

    with pytest.raises(PluginAlreadyExists):
        registry.add(_audit())
    with pytest.raises(PluginNotFound):
        registry.update("notes", enabled=True)
    with pytest.raises(PluginNotFound):
        registry.remove("notes")

    assert registry.version() == version


# -- copies --------------------------------------------------------------------------------


def _mutate(record: PluginRecord) -> None:
    record.options["nested"]["level"] = 99
    record.options["extra"] = True
    record.enabled = True


@pytest.mark.parametrize("source", ["add", "get", "list", "update"])
def test_copies__mutating_a_returned_record_changes_nothing_stored(registry, source):
    added = registry.add(_audit(options={"nested": {"level": 1}}))
    returned = {
        "add": lambda: added,
        "get": lambda: registry.get("audit"),
        "list": lambda: registry.list()[0],
        "update": lambda: registry.update("audit", options={"nested": {"level": 1}}),
    }[source]()
    stored = registry.get("audit")

    _mutate(returned)

    assert registry.get("audit") == stored
    assert registry.get("audit").options == {"nested": {"level": 1}}


def test_copies__mutating_the_added_record_afterwards_changes_nothing_stored(registry):
    record = _audit(options={"nested": {"level": 1}})
    registry.add(record)

    _mutate(record)

    assert registry.get("audit").options == {"nested": {"level": 1}}
    assert registry.get("audit").enabled is False


# -- options -------------------------------------------------------------------------------

NESTED_OPTIONS = {
    "depth": {"one": {"two": {"three": [1, 2.5, None, True, False, "ü", {"four": []}]}}},
    "empty_object": {},
    "empty_list": [],
    "text": "line\nbreak \"quoted\" 🙂",
    "big": 2**53,
    "negative": -7,
}


def test_options__nested_json_round_trips_through_add(registry):
    registry.add(_audit(options=NESTED_OPTIONS))

    assert registry.get("audit").options == NESTED_OPTIONS


def test_options__nested_json_round_trips_through_update(registry):
    registry.add(_audit())

    registry.update("audit", options=NESTED_OPTIONS)

    assert registry.get("audit").options == NESTED_OPTIONS


def _nested(depth: int) -> dict:
    """Options nesting ``depth`` objects (``{"a": 1}`` is 1)."""
    value: dict = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_options__nesting_up_to_the_limit_round_trips(registry):
    registry.add(_audit(options=_nested(MAX_OPTIONS_DEPTH)))

    assert registry.get("audit").options == _nested(MAX_OPTIONS_DEPTH)


# -- names and field types -----------------------------------------------------------------

BAD_NAMES = [
    pytest.param("bad/name", id="slash"),
    pytest.param("", id="empty"),
    pytest.param("..", id="dots"),
    pytest.param(".hidden", id="leading-dot"),
    pytest.param("-x", id="leading-dash"),
    pytest.param("a b", id="space"),
    pytest.param("notes\n", id="newline"),
    pytest.param("a" * 101, id="101-characters"),
    pytest.param("<script>", id="markup"),
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names__add_refuses_a_name_outside_the_rule_and_stores_nothing(registry, name):
    version = registry.version()

    with pytest.raises(InvalidPluginName, match="invalid plugin name"):
        registry.add(PluginRecord(name=name))

    assert registry.list() == []
    assert registry.version() == version


@pytest.mark.parametrize("write", [
    pytest.param(lambda r: r.update("bad/name", enabled=True), id="update"),
    pytest.param(lambda r: r.remove("bad/name"), id="remove"),
    pytest.param(lambda r: r.restore("bad/name", PluginRecord(name="bad/name")), id="restore"),
    pytest.param(lambda r: r.restore("audit", PluginRecord(name="bad/name")), id="restore-as"),
])
def test_names__every_write_refuses_a_bad_name(registry, write):
    registry.add(_audit())
    before = registry.list()

    with pytest.raises(InvalidPluginName, match="bad/name"):
        write(registry)

    assert registry.list() == before


def test_names__the_longest_name_and_every_allowed_character_are_kept(registry):
    names = ["a" * 100, "my_plugin-2.0", "_private", "9lives", "übersicht"]
    for name in names:
        registry.add(PluginRecord(name=name))

    assert sorted(record.name for record in registry.list()) == sorted(names)


def test_names__get_of_a_bad_name_is_none(registry):
    assert registry.get("bad/name") is None


WRONG_TYPES = [
    pytest.param({"enabled": "no"}, "'enabled'", id="enabled-string"),
    pytest.param({"installed": 1}, "'installed'", id="installed-int"),
    pytest.param({"built_in": None}, "'built_in'", id="built-in-null"),
    pytest.param({"version": 2}, "'version'", id="version-int"),
    pytest.param({"package_name": ["demo"]}, "'package_name'", id="package-list"),
    pytest.param({"last_error": None}, "'last_error'", id="last-error-null"),
    pytest.param({"options": "{}"}, "'options'", id="options-string"),
    pytest.param({"options": _nested(MAX_OPTIONS_DEPTH + 1)}, f"{MAX_OPTIONS_DEPTH} levels",
                 id="options-too-deep"),
    pytest.param({"options": {"key": "nul\x00"}}, "NUL", id="options-nul"),
    pytest.param({"options": {"\ud800": 1}}, "surrogate", id="options-surrogate"),
    pytest.param({"options": {"x": math.nan}}, "NaN", id="options-nan"),
]


@pytest.mark.parametrize(("changes", "field"), WRONG_TYPES)
def test_types__update_refuses_a_wrong_type_naming_the_field_and_stores_nothing(registry, changes, field):
    registry.add(_audit())
    stored, version = registry.list(), registry.version()

    with pytest.raises(InvalidRecord, match=re.escape(field)) as raised:
        registry.update("audit", **changes)

    assert "audit" in str(raised.value)
    assert registry.list() == stored
    assert registry.version() == version


@pytest.mark.parametrize(("fields", "field"), WRONG_TYPES)
def test_types__add_refuses_a_wrong_type_naming_the_field(registry, fields, field):
    with pytest.raises(InvalidRecord, match=re.escape(field)):
        registry.add(_audit(**fields))

    assert registry.list() == []


def test_types__refusals_are_value_errors_and_plugin_errors():
    # callers that caught ValueError keep working; the commands print a PluginError as one line
    assert issubclass(InvalidRecord, ValueError) and issubclass(InvalidRecord, PluginError)
    assert issubclass(InvalidPluginName, ValueError) and issubclass(InvalidPluginName, PluginError)


# -- restore -------------------------------------------------------------------------------


def test_restore__puts_back_a_changed_record(registry):
    registry.add(_audit())
    snapshot = registry.get("audit")
    registry.update("audit", enabled=True, installed=True, version="2.0.0", options={"level": 9},
                    last_error="boom")

    registry.restore("audit", snapshot)

    assert _without_updated(registry.get("audit")) == _without_updated(snapshot)


def test_restore__puts_back_a_removed_record(registry):
    registry.add(_audit(enabled=True, installed=True))
    snapshot = registry.get("audit")
    registry.remove("audit")

    registry.restore("audit", snapshot)

    assert _without_updated(registry.get("audit")) == _without_updated(snapshot)


def test_restore__absent_removes_an_added_record(registry):
    registry.add(_audit())
    registry.add(PluginRecord(name="notes"))

    registry.restore("notes", None)

    assert registry.get("notes") is None
    assert [record.name for record in registry.list()] == ["audit"]


def test_restore__absent_of_an_unknown_name_changes_nothing(registry):
    registry.add(_audit())
    stored = registry.list()

    registry.restore("notes", None)

    assert registry.list() == stored


# -- durability ----------------------------------------------------------------------------


@pytest.mark.parametrize("store", [p for p in DRIVERS if p.values != ("memory",)], indirect=True)
@pytest.mark.parametrize(("write", "expected"), [
    pytest.param(lambda r, snapshot: r.add(PluginRecord(name="notes", version="3.0.0")),
                 [("audit", "1.0.0", True, {"level": 1}), ("notes", "3.0.0", False, {})], id="add"),
    pytest.param(lambda r, snapshot: r.update("audit", version="2.0.0", options={"level": 5}),
                 [("audit", "2.0.0", True, {"level": 5})], id="update"),
    pytest.param(lambda r, snapshot: r.remove("audit"), [], id="remove"),
    pytest.param(lambda r, snapshot: r.restore("audit", snapshot),
                 [("audit", "1.0.0", False, {"level": 1})], id="restore"),
])
def test_writes__are_seen_by_a_new_driver_on_the_same_store(store, write, expected):
    registry = store.registry
    registry.add(_audit())
    snapshot = registry.get("audit")
    registry.update("audit", enabled=True)
    write(registry, snapshot)
    registry.flush()

    other = store.reopen()

    assert [(r.name, r.version, r.enabled, r.options) for r in other.list()] == expected
    assert [_stored_fields(record) for record in other.list()] == [
        _stored_fields(record) for record in registry.list()]


# -- async twins ---------------------------------------------------------------------------
# Called through async_to_sync from the sync test, so that the database driver's
# thread-sensitive sync_to_async runs on this thread and the test's connection.


def test_aadd__then_aget_returns_the_record(registry):
    added = async_to_sync(registry.aadd)(_audit(options={"nested": {"level": 1}}))

    record = async_to_sync(registry.aget)("audit")

    assert record == added == registry.get("audit")
    assert record.options == {"nested": {"level": 1}}


def test_aadd__existing_name_raises_plugin_already_exists(registry):
    registry.add(_audit())

    with pytest.raises(PluginAlreadyExists, match="audit"):
        async_to_sync(registry.aadd)(_audit(version="2.0.0"))

    assert registry.get("audit").version == "1.0.0"


def test_aget__unknown_name_is_none(registry):
    assert async_to_sync(registry.aget)("audit") is None


def test_alist__sorted_by_name(registry):
    for name in ["notes", "audit", "zeta"]:
        registry.add(PluginRecord(name=name))

    records = async_to_sync(registry.alist)()

    assert [record.name for record in records] == ["audit", "notes", "zeta"]
    assert records == registry.list()


def test_aupdate__changes_only_the_named_fields(registry):
    registry.add(_audit())
    before = registry.get("audit")

    updated = async_to_sync(registry.aupdate)("audit", enabled=True)

    assert updated == registry.get("audit")
    assert _without_updated(updated) == _without_updated(dataclasses.replace(before, enabled=True))


def test_aupdate__unknown_name_raises_plugin_not_found(registry):
    with pytest.raises(PluginNotFound, match="audit"):
        async_to_sync(registry.aupdate)("audit", enabled=True)


def test_aupdate__unknown_field_raises_value_error(registry):
    registry.add(_audit())

    with pytest.raises(ValueError, match="bogus"):
        async_to_sync(registry.aupdate)("audit", bogus=1)

    assert registry.get("audit").enabled is False


def test_aremove__then_aget_is_none(registry):
    registry.add(_audit())

    async_to_sync(registry.aremove)("audit")

    assert async_to_sync(registry.aget)("audit") is None
    assert registry.list() == []


def test_aremove__unknown_name_raises_plugin_not_found(registry):
    with pytest.raises(PluginNotFound, match="audit"):
        async_to_sync(registry.aremove)("audit")


# -- DualWriteRegistry ---------------------------------------------------------------------


def test_dualwrite_hydrate__loads_the_persistent_records_on_first_use(persistent):
    registry = DualWriteRegistry(persistent=persistent)
    persistent.add(_audit(enabled=True))  # after construction, before first use
    persistent.add(PluginRecord(name="notes"))

    assert registry.list() == persistent.list()
    assert registry.get("audit") == persistent.get("audit")


def test_dualwrite_reads__are_served_from_memory_after_hydration():
    persistent = UnreadableRegistry([_audit()])
    registry = DualWriteRegistry(persistent=persistent)
    registry.list()

    persistent.broken = True

    assert [record.name for record in registry.list()] == ["audit"]
    assert registry.get("audit").version == "1.0.0"
    assert registry.get("notes") is None


def _summary(registry: BasePluginRegistry, name: str) -> tuple[str, bool] | None:
    record = registry.get(name)
    return None if record is None else (record.version, record.enabled)


FAILED_WRITES = [
    pytest.param(lambda r: r.add(PluginRecord(name="notes", version="2.0.0")), "notes",
                 ("2.0.0", False), id="add"),
    pytest.param(lambda r: r.update("audit", enabled=True), "audit", ("1.0.0", True), id="update"),
    pytest.param(lambda r: r.remove("audit"), "audit", None, id="remove"),
    pytest.param(lambda r: r.restore("audit", _audit(version="0.9.0")), "audit", ("0.9.0", False),
                 id="restore"),
]


@pytest.mark.parametrize(("write", "name", "expected"), FAILED_WRITES)
def test_dualwrite_write__with_a_failed_flush_is_visible_at_once(flaky, write, name, expected):
    persistent = flaky([_audit()])
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.list()
    persistent.failures = 1

    write(registry)

    assert _summary(registry, name) == expected
    assert _summary(persistent, name) != expected


@pytest.mark.parametrize(("write", "name", "expected"), FAILED_WRITES)
def test_dualwrite_write__with_a_failed_flush_is_pending(flaky, write, name, expected):
    persistent = flaky([_audit()])
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.list()
    persistent.failures = 1

    write(registry)

    assert registry.pending == [name]


@pytest.mark.parametrize(("write", "name", "expected"), FAILED_WRITES)
def test_dualwrite_flush__persists_a_write_whose_flush_failed_once(flaky, write, name, expected):
    persistent = flaky([_audit()])
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.list()
    persistent.failures = 1
    write(registry)

    registry.flush()

    assert registry.pending == []
    assert _summary(persistent, name) == expected
    assert _summary(registry, name) == expected


def test_dualwrite_write__retries_what_is_pending(flaky):
    persistent = flaky(failures=1)
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.add(_audit())

    registry.add(PluginRecord(name="notes"))

    assert registry.pending == []
    assert [record.name for record in persistent.list()] == ["audit", "notes"]


def test_dualwrite_flush__raises_naming_the_plugin_when_the_driver_keeps_failing(flaky):
    registry = DualWriteRegistry(persistent=flaky(failures=math.inf), retries=2, retry_delay=0)
    registry.add(_audit())

    with pytest.raises(RegistryFlushError, match="audit"):
        registry.flush()


def test_dualwrite_flush__tries_as_many_times_as_retries(flaky):
    persistent = flaky(failures=math.inf)
    registry = DualWriteRegistry(persistent=persistent, retries=3, retry_delay=0)
    registry.add(_audit())
    attempts = persistent.write_attempts

    with pytest.raises(RegistryFlushError):
        registry.flush()

    assert persistent.write_attempts - attempts == 3


def test_dualwrite_flush__retries_default_to_the_flush_retries_setting(flaky, settings):
    settings.TACHYCORE = {**settings.TACHYCORE, "FLUSH_RETRIES": 2}
    persistent = flaky(failures=math.inf)
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.add(_audit())
    attempts = persistent.write_attempts

    with pytest.raises(RegistryFlushError, match="2 tries"):
        registry.flush()

    assert persistent.write_attempts - attempts == 2


def test_dualwrite_flush__failed_keeps_the_change_pending_and_in_memory(flaky):
    persistent = flaky(failures=math.inf)
    registry = DualWriteRegistry(persistent=persistent, retries=2, retry_delay=0)
    registry.add(_audit())

    with pytest.raises(RegistryFlushError):
        registry.flush()

    assert registry.pending == ["audit"]
    assert registry.get("audit").version == "1.0.0"
    assert persistent.get("audit") is None


def test_dualwrite_flush__persists_after_the_driver_recovers(flaky):
    persistent = flaky(failures=math.inf)
    registry = DualWriteRegistry(persistent=persistent, retries=2, retry_delay=0)
    registry.add(_audit())
    with pytest.raises(RegistryFlushError):
        registry.flush()

    persistent.failures = 0
    registry.flush()

    assert registry.pending == []
    assert persistent.get("audit").version == "1.0.0"


@pytest.mark.parametrize(("initial", "write"), [
    pytest.param([], lambda r: r.add(_audit(options={"nested": {"level": 1}})), id="add"),
    pytest.param([_audit()], lambda r: r.update("audit", options={"nested": {"level": 1}}),
                 id="update"),
])
def test_dualwrite_write__returned_record_is_a_copy_while_the_flush_is_pending(flaky, initial, write):
    persistent = flaky(initial)
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.list()
    persistent.failures = 1
    returned = write(registry)

    _mutate(returned)
    registry.flush()

    assert persistent.get("audit").options == {"nested": {"level": 1}}
    assert persistent.get("audit").enabled is False


def test_dualwrite_restore__snapshot_mutated_while_the_flush_is_pending_changes_nothing_stored(flaky):
    persistent = flaky([_audit(options={"nested": {"level": 1}})])
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    snapshot = registry.get("audit")
    registry.update("audit", options={"nested": {"level": 2}})
    persistent.failures = 1
    registry.restore("audit", snapshot)

    _mutate(snapshot)
    registry.flush()

    assert persistent.get("audit").options == {"nested": {"level": 1}}
    assert registry.get("audit").options == {"nested": {"level": 1}}


@pytest.mark.parametrize("write", ["add", "update", "restore"])
def test_dualwrite_write__persists_the_record_it_returns(persistent, write):
    registry = DualWriteRegistry(persistent=persistent)
    returned = registry.add(_audit())
    if write == "update":
        returned = registry.update("audit", enabled=True)
    elif write == "restore":
        registry.remove("audit")
        registry.restore("audit", returned)

    assert persistent.get("audit") == returned


def test_dualwrite_version__sees_a_write_made_directly_to_the_persistent_driver(persistent):
    registry = DualWriteRegistry(persistent=persistent)
    registry.add(_audit())
    version = registry.version()

    persistent.add(PluginRecord(name="notes", version="2.0.0"))  # another writer
    persistent.update("audit", enabled=True)

    assert registry.version() > version
    assert _summary(registry, "notes") == ("2.0.0", False)
    assert _summary(registry, "audit") == ("1.0.0", True)


def test_dualwrite_version__keeps_a_pending_change_when_another_writer_wrote(flaky):
    persistent = flaky(failures=1)
    registry = DualWriteRegistry(persistent=persistent, retry_delay=0)
    registry.add(_audit())  # its flush fails: pending
    persistent.add(PluginRecord(name="notes"))  # another writer

    registry.version()

    assert registry.get("audit") is not None
    registry.flush()
    registry.version()
    assert [record.name for record in persistent.list()] == ["audit", "notes"]
    assert [record.name for record in registry.list()] == ["audit", "notes"]


def test_pm_command__failed_flush_exits_with_a_command_error(db, flaky, monkeypatch):
    from tachycore.manager import plugin_manager

    registry = DualWriteRegistry(persistent=flaky(failures=math.inf), retry_delay=0)
    monkeypatch.setattr(plugin_manager, "_registry", registry)

    with pytest.raises(CommandError, match="could not be written") as raised:
        call_command("pm", "add", "audit", stdout=io.StringIO(), stderr=io.StringIO())

    assert "audit" in str(raised.value)


# -- JSONFileRegistry ----------------------------------------------------------------------


@pytest.mark.parametrize("content", [
    pytest.param("{not json", id="not-json"),
    pytest.param("", id="empty"),
    pytest.param("[]", id="not-an-object"),
    pytest.param('{"plugins": []}', id="no-version"),
    pytest.param('{"version": 1, "plugins": [{"version": "1.0.0"}]}', id="record-without-name"),
    pytest.param('{"version": 1, "plugins": [{"name": "a", "created": "yesterday"}]}',
                 id="bad-datetime"),
])
def test_jsonfile_list__corrupt_file_raises_registry_error_naming_the_path(tmp_path, content):
    path = tmp_path / "plugins.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(RegistryError, match=re.escape(str(path))):
        JSONFileRegistry(path).list()


@pytest.mark.parametrize("operation", [
    pytest.param(lambda r: r.get("audit"), id="get"),
    pytest.param(lambda r: r.version(), id="version"),
    pytest.param(lambda r: r.add(_audit()), id="add"),
    pytest.param(lambda r: r.update("audit", enabled=True), id="update"),
    pytest.param(lambda r: r.remove("audit"), id="remove"),
])
def test_jsonfile_operation__corrupt_file_raises_registry_error_naming_the_path(tmp_path, operation):
    path = tmp_path / "plugins.json"
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(RegistryError, match=re.escape(str(path))):
        operation(JSONFileRegistry(path))


def test_jsonfile_add__corrupt_file_is_left_as_it_was(tmp_path):
    path = tmp_path / "plugins.json"
    path.write_text('{"version": 3, "plugins": [{"name": "audit"', encoding="utf-8")

    with pytest.raises(RegistryError):
        JSONFileRegistry(path).add(PluginRecord(name="notes"))

    assert path.read_text(encoding="utf-8") == '{"version": 3, "plugins": [{"name": "audit"'


def test_jsonfile_write__file_is_json_with_version_and_plugins(tmp_path):
    path = tmp_path / "plugins.json"
    registry = JSONFileRegistry(path)

    registry.add(_audit())
    registry.update("audit", enabled=True)

    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["version"] == 2
    assert [(item["name"], item["enabled"]) for item in data["plugins"]] == [("audit", True)]


_WRITER = """
import pathlib, sys, time
import django
django.setup()
from tachycore.registry import JSONFileRegistry, PluginRecord
path, prefix = pathlib.Path(sys.argv[1]), sys.argv[2]
registry = JSONFileRegistry(path)
(path.parent / f"ready-{prefix}").touch()
deadline = time.monotonic() + 30
while not (path.parent / "go").exists() and time.monotonic() < deadline:
    time.sleep(0.002)
for i in range(50):
    registry.add(PluginRecord(name=f"{prefix}-{i:02d}", options={"writer": prefix}))
"""


def test_jsonfile_add__two_processes_at_once_lose_nothing(tmp_path):
    path = tmp_path / "plugins.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env |= {"DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(path), prefix], env=env, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for prefix in ("first", "second")
    ]
    try:
        wait_until(lambda: all((tmp_path / f"ready-{p}").exists() for p in ("first", "second"))
                   or any(w.poll() is not None for w in writers), timeout=60)
        (tmp_path / "go").touch()  # both start writing at the same moment
        outputs = [writer.communicate(timeout=120) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
    for writer, (_, stderr) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, stderr

    registry = JSONFileRegistry(path)
    names = [record.name for record in registry.list()]
    assert len(names) == 100
    assert names == sorted(f"{prefix}-{i:02d}" for prefix in ("first", "second") for i in range(50))
    assert registry.version() == 100


def _file_with(tmp_path: Path, *records: dict, version: int = 1) -> Path:
    path = tmp_path / "plugins.json"
    path.write_text(json.dumps({"version": version, "plugins": list(records)}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("record", "says"), [
    pytest.param({"name": "audit", "enabled": "no"}, "field 'enabled' of plugin 'audit' must be true or false, got 'no'",
                 id="enabled-string"),
    pytest.param({"name": "audit", "installed": 1}, "field 'installed'", id="installed-int"),
    pytest.param({"name": "audit", "built_in": "true"}, "field 'built_in'", id="built-in-string"),
    pytest.param({"name": "audit", "version": 1.0}, "field 'version'", id="version-number"),
    pytest.param({"name": "audit", "options": [1]}, "field 'options'", id="options-list"),
    pytest.param({"name": "audit", "options": {"x": _nested(MAX_OPTIONS_DEPTH)}}, "levels deep",
                 id="options-too-deep"),
    pytest.param({"name": "audit", "options": {"x": "\u0000"}}, "NUL", id="options-nul"),
    pytest.param({"name": "audit", "last_error": 0}, "field 'last_error'", id="last-error-int"),
    pytest.param({"name": "audit", "created": "yesterday"}, "field 'created'", id="created-not-a-date"),
    pytest.param({"name": "audit", "updated": 1700000000}, "field 'updated'", id="updated-number"),
    pytest.param({"name": "audit", "enable": True}, "no field 'enable'", id="unknown-field"),
    pytest.param({"name": "bad/name"}, "invalid plugin name 'bad/name'", id="bad-name"),
    pytest.param({"name": 7}, "invalid plugin name 7", id="name-not-a-string"),
    pytest.param({"version": "1.0.0"}, "no 'name'", id="no-name"),
    pytest.param("audit", "must be a JSON object", id="record-not-an-object"),
])
def test_jsonfile_read__a_bad_record_is_refused_naming_the_file_record_and_field(tmp_path, record, says):
    path = _file_with(tmp_path, {"name": "notes"}, record)

    with pytest.raises(InvalidRegistryFile) as raised:
        JSONFileRegistry(path).list()

    message = str(raised.value)
    assert str(path) in message and "plugins[1]" in message and says in message
    assert len(message) < 400 and "\n" not in message


@pytest.mark.parametrize(("content", "says"), [
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "nests too deeply", id="100k-deep"),
    pytest.param(b'{"version": 1, "plugins": [{"name": "\xff"}]}', "not UTF-8", id="invalid-utf8"),
    pytest.param(b'{"version": 1, "plugins": [{"name": "a", "options": {"x": NaN}}]}', "NaN",
                 id="nan"),
    pytest.param(b'{"version": "1", "plugins": []}', '"version"', id="version-string"),
    pytest.param(b'{"version": -1, "plugins": []}', '"version"', id="version-negative"),
    pytest.param(b'{"version": true, "plugins": []}', '"version"', id="version-bool"),
    pytest.param(b'{"version": 1, "plugins": {}}', '"plugins"', id="plugins-not-a-list"),
    pytest.param(b'{"version": 1, "plugins": [], "extra": 1}', '"version" and "plugins" only',
                 id="unknown-key"),
    pytest.param(b'{"version": 1, "plugins": [{"name": "a"}, {"name": "a"}]}', "listed twice",
                 id="duplicate"),
])
def test_jsonfile_read__a_bad_file_is_one_registry_error_naming_it(tmp_path, content, says):
    path = tmp_path / "plugins.json"
    path.write_bytes(content)

    with pytest.raises(InvalidRegistryFile) as raised:
        JSONFileRegistry(path).list()

    assert str(path) in str(raised.value) and says in str(raised.value)
    assert isinstance(raised.value, RegistryError)


def test_jsonfile_write__a_bad_file_is_not_written_over(tmp_path):
    path = _file_with(tmp_path, {"name": "audit", "enabled": "no"})
    before = path.read_bytes()

    with pytest.raises(InvalidRegistryFile):
        JSONFileRegistry(path).add(PluginRecord(name="notes"))

    assert path.read_bytes() == before


def test_jsonfile_read__a_file_it_wrote_reads_back_every_field(tmp_path):
    path = tmp_path / "plugins.json"
    JSONFileRegistry(path).add(_audit(enabled=True, installed=True, built_in=True, last_error="x",
                                      options=_nested(MAX_OPTIONS_DEPTH)))

    record = JSONFileRegistry(path).get("audit")

    assert (record.enabled, record.installed, record.built_in, record.last_error) == (True, True, True, "x")
    assert record.options == _nested(MAX_OPTIONS_DEPTH)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o664])
def test_jsonfile_write__keeps_the_mode_of_the_file_it_replaces(tmp_path, mode):
    path = tmp_path / "plugins.json"
    registry = JSONFileRegistry(path)
    registry.add(_audit())
    os.chmod(path, mode)

    registry.update("audit", enabled=True)
    registry.add(PluginRecord(name="notes"))

    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    assert registry.get("audit").enabled is True


def test_jsonfile_write__a_new_file_gets_the_usual_mode_less_the_umask(tmp_path):
    path = tmp_path / "plugins.json"
    old_umask = os.umask(0o022)
    try:
        JSONFileRegistry(path).add(_audit())
    finally:
        os.umask(old_umask)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may give a file to another user")
def test_jsonfile_write__as_root_keeps_the_owner_and_group_of_the_file_it_replaces(tmp_path):
    path = tmp_path / "plugins.json"
    registry = JSONFileRegistry(path)
    registry.add(_audit())
    os.chown(path, 65534, 65534)  # nobody
    os.chmod(path, 0o640)

    registry.update("audit", enabled=True)

    found = os.stat(path)
    assert (found.st_uid, found.st_gid, stat.S_IMODE(found.st_mode)) == (65534, 65534, 0o640)


def test_jsonfile_write__leaves_no_temporary_file_behind(tmp_path):
    path = tmp_path / "plugins.json"
    registry = JSONFileRegistry(path)

    registry.add(_audit())
    registry.update("audit", enabled=True)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["plugins.json", "plugins.json.lock"]


@pytest.mark.parametrize("operation", [
    pytest.param(lambda r: r.list(), id="list"),
    pytest.param(lambda r: r.version(), id="version"),
    pytest.param(lambda r: r.add(PluginRecord(name="notes")), id="add"),
    pytest.param(lambda r: r.update("audit", enabled=True), id="update"),
])
def test_jsonfile_symlink__the_file_behind_a_symbolic_link_is_refused_and_left_alone(tmp_path, operation):
    target = tmp_path / "elsewhere.json"
    JSONFileRegistry(target).add(_audit())
    before = target.read_bytes()
    path = tmp_path / "plugins.json"
    path.symlink_to(target)

    with pytest.raises(RegistryError, match="symbolic link") as raised:
        operation(JSONFileRegistry(path))

    assert str(path) in str(raised.value)
    assert target.read_bytes() == before
    assert path.is_symlink()


def test_jsonfile_symlink__a_lock_file_that_is_a_symbolic_link_is_refused(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me", encoding="utf-8")
    path = tmp_path / "plugins.json"
    Path(f"{path}.lock").symlink_to(victim)

    with pytest.raises(RegistryError, match="symbolic link") as raised:
        JSONFileRegistry(path).add(_audit())

    assert f"{path}.lock" in str(raised.value)
    assert victim.read_text(encoding="utf-8") == "keep me"
    assert not path.exists()


@pytest.mark.parametrize("path", ["plugins.json", "var/plugins.json", "./plugins.json", "~/plugins.json", ""])
def test_jsonfile_path__a_relative_path_is_refused_at_once(path):
    with pytest.raises(RegistryPathError, match="absolute PATH") as raised:
        JSONFileRegistry(path)

    assert isinstance(raised.value, ImproperlyConfigured)


def test_jsonfile_path__a_relative_path_in_the_setting_is_refused_by_load_registry():
    with pytest.raises(RegistryPathError, match="plugins.json"):
        load_registry({"BACKEND": "tachycore.registry.JSONFileRegistry", "OPTIONS": {"PATH": "plugins.json"}})


# -- DatabaseRegistry: rows written by hand --------------------------------------------------


@pytest.fixture
def hand_made_rows(db):
    """A valid row, and rows only SQL by hand can write: a bad name, options that are no object."""
    from tachycore.models import ApplicationPlugin

    _empty_database_registry().add(_audit())
    ApplicationPlugin.objects.create(name="bad/name", enabled=True, installed=True)
    ApplicationPlugin.objects.create(name="listed", options=[1, 2])


@pytest.mark.parametrize("make", [
    pytest.param(DatabaseRegistry, id="database"),
    pytest.param(lambda: DualWriteRegistry(persistent=DatabaseRegistry()), id="dualwrite-database"),
])
def test_database_read__rows_breaking_the_rules_are_skipped_and_named(hand_made_rows, make):
    registry = make()

    assert [record.name for record in registry.list()] == ["audit"]
    assert registry.get("bad/name") is None and registry.get("listed") is None
    invalid = dict(registry.invalid_records())
    assert set(invalid) == {"bad/name", "listed"}
    assert "invalid plugin name 'bad/name'" in invalid["bad/name"]
    assert "field 'options'" in invalid["listed"]


def test_database_read__a_skipped_row_is_logged_once_per_process(hand_made_rows, caplog):
    registry = DatabaseRegistry()

    with caplog.at_level("WARNING", logger="tachycore.registry"):
        registry.list()
        registry.list()

    skipped = [r.getMessage() for r in caplog.records if "'bad/name'" in r.getMessage()]
    assert len(skipped) == 1 and "skipped" in skipped[0] and "applicationPlugins" in skipped[0]


def test_database_read__a_skipped_row_is_left_as_it_is(hand_made_rows):
    from tachycore.models import ApplicationPlugin

    registry = DatabaseRegistry()
    registry.add(PluginRecord(name="notes"))
    registry.update("audit", enabled=True)

    assert ApplicationPlugin.objects.filter(name="bad/name", enabled=True).exists()



# -- load_registry -------------------------------------------------------------------------


def test_load_registry__dotted_path_builds_that_driver():
    registry = load_registry("tachycore.registry.MemoryRegistry")

    assert type(registry) is MemoryRegistry
    assert registry.list() == []


def test_load_registry__json_file_with_a_path_option_writes_that_file(tmp_path):
    path = tmp_path / "conf" / "plugins.json"
    registry = load_registry({"BACKEND": "tachycore.registry.JSONFileRegistry",
                              "OPTIONS": {"PATH": str(path)}})

    registry.add(_audit())

    assert type(registry) is JSONFileRegistry
    assert JSONFileRegistry(path).get("audit").package_name == "demo.audit"


def test_load_registry__dual_write_with_a_persistent_option_writes_through(tmp_path):
    path = tmp_path / "plugins.json"
    registry = load_registry({
        "BACKEND": "tachycore.registry.DualWriteRegistry",
        "OPTIONS": {"PERSISTENT": {"BACKEND": "tachycore.registry.JSONFileRegistry",
                                   "OPTIONS": {"PATH": str(path)}}},
    })

    registry.add(_audit())
    registry.flush()

    assert type(registry) is DualWriteRegistry
    assert JSONFileRegistry(path).get("audit").package_name == "demo.audit"


def test_load_registry__dual_write_with_a_dotted_persistent_option(db):
    registry = load_registry({"BACKEND": "tachycore.registry.DualWriteRegistry",
                              "OPTIONS": {"PERSISTENT": "tachycore.registry.DatabaseRegistry"}})

    registry.add(PluginRecord(name="audit-dual"))
    registry.flush()

    assert DatabaseRegistry().get("audit-dual") is not None


@pytest.mark.parametrize(("config", "path"), [
    pytest.param("tachycore.registry.NoSuchRegistry", "tachycore.registry.NoSuchRegistry",
                 id="unknown-class"),
    pytest.param("no_such_module.Registry", "no_such_module.Registry", id="unknown-module"),
    pytest.param("notadottedpath", "notadottedpath", id="not-dotted"),
    pytest.param({"BACKEND": "tachycore.registry.Nope"}, "tachycore.registry.Nope", id="dict"),
    pytest.param("tachycore.errors.RegistryError", "tachycore.errors.RegistryError",
                 id="not-a-registry"),
    pytest.param({"BACKEND": "tachycore.registry.DualWriteRegistry",
                  "OPTIONS": {"PERSISTENT": "tachycore.registry.Missing"}},
                 "tachycore.registry.Missing", id="bad-persistent"),
])
def test_load_registry__bad_path_raises_configuration_error_naming_it(config, path):
    with pytest.raises(RegistryConfigurationError, match=re.escape(path)) as raised:
        load_registry(config)

    assert isinstance(raised.value, ImproperlyConfigured)


@pytest.mark.parametrize("config", [
    pytest.param("tachycore.registry.DualWriteRegistry", id="dotted"),
    pytest.param({"BACKEND": "tachycore.registry.DualWriteRegistry"}, id="dict"),
    pytest.param({"BACKEND": "tachycore.registry.DualWriteRegistry", "OPTIONS": {}}, id="no-options"),
])
def test_load_registry__dual_write_without_persistent_is_refused(config):
    with pytest.raises(RegistryConfigurationError, match="PERSISTENT"):
        load_registry(config)


def test_load_registry__unknown_option_raises_configuration_error():
    with pytest.raises(RegistryConfigurationError, match="tachycore.registry.JSONFileRegistry"):
        load_registry({"BACKEND": "tachycore.registry.JSONFileRegistry",
                       "OPTIONS": {"PATH": "plugins.json", "COLOUR": "blue"}})


def test_load_registry__the_registry_setting_chooses_the_plugin_manager_driver(db, settings, tmp_path):
    from tachycore.manager import plugin_manager

    path = tmp_path / "plugins.json"
    settings.TACHYCORE = {**settings.TACHYCORE, "REGISTRY": {
        "BACKEND": "tachycore.registry.JSONFileRegistry", "OPTIONS": {"PATH": str(path)}}}

    plugin_manager.add("audit")

    assert JSONFileRegistry(path).get("audit").package_name == plugin_manager.get("audit").package_name
    assert DatabaseRegistry().get("audit") is None
