"""Settings access (environment > settings > defaults) and the kernel's system checks."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tachycore import checks
from tachycore.conf import parse_duration, tachycore_settings
from tachycore.db import configure_sqlite


@pytest.fixture(autouse=True)
def _fresh_settings():
    tachycore_settings.reset()
    yield
    tachycore_settings.reset()


@pytest.mark.parametrize(("value", "seconds"), [
    (5, 5.0), (0.25, 0.25), ("5", 5.0), ("5s", 5.0), ("500ms", 0.5), ("2m", 120.0), ("1.5h", 5400.0),
    ("1d", 86400.0), (" 3 s ", 3.0),
])
def test_parse_duration__accepts_seconds_and_units(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 minutes", "-1", -1, True, None, "1w"])
def test_parse_duration__refuses_anything_else(value):
    with pytest.raises(ValueError):
        parse_duration(value)


def test_settings__default_when_unset(settings):
    settings.TACHYCORE = {}

    assert tachycore_settings.STATE_CHECK_INTERVAL == 0.5
    assert tachycore_settings.REGISTRY == "tachycore.registry.DatabaseRegistry"


def test_settings__settings_dict_overrides_default(settings):
    settings.TACHYCORE = {"STATE_CHECK_INTERVAL": "2s"}

    assert tachycore_settings.STATE_CHECK_INTERVAL == 2.0


def test_settings__environment_overrides_settings(settings, monkeypatch):
    settings.TACHYCORE = {"STATE_CHECK_INTERVAL": "2s", "FLUSH_RETRIES": 2}
    monkeypatch.setenv("TACHYCORE_STATE_CHECK_INTERVAL", "250ms")
    monkeypatch.setenv("TACHYCORE_FLUSH_RETRIES", "7")
    tachycore_settings.reset()

    assert tachycore_settings.STATE_CHECK_INTERVAL == 0.25
    assert tachycore_settings.FLUSH_RETRIES == 7


def test_settings__registry_dict_from_environment_json(monkeypatch):
    monkeypatch.setenv("TACHYCORE_REGISTRY", '{"BACKEND": "tachycore.registry.MemoryRegistry"}')
    tachycore_settings.reset()

    assert tachycore_settings.REGISTRY == {"BACKEND": "tachycore.registry.MemoryRegistry"}


def test_settings__changed_settings_are_seen_at_once(settings):
    settings.TACHYCORE = {"FLUSH_RETRIES": 4}
    assert tachycore_settings.FLUSH_RETRIES == 4

    settings.TACHYCORE = {"FLUSH_RETRIES": 9}
    assert tachycore_settings.FLUSH_RETRIES == 9


def _check_ids(check):
    return [(message.id, message.msg) for message in check()]


def test_checks__unknown_key_is_an_error_naming_it(settings):
    settings.TACHYCORE = {"STATE_CHECK_INTERVALL": 1}

    assert _check_ids(checks.check_settings) == [
        ("tachycore.E001", 'TACHYCORE["STATE_CHECK_INTERVALL"]: unknown key')
    ]


@pytest.mark.parametrize(("key", "value"), [
    ("STATE_CHECK_INTERVAL", "soon"), ("STATE_CHECK_INTERVAL", -2), ("FLUSH_RETRIES", 0),
    ("FLUSH_RETRIES", "many"), ("REGISTRY", 42),
])
def test_checks__bad_value_is_an_error_naming_the_key(settings, key, value):
    settings.TACHYCORE = {key: value}

    [(check_id, message)] = _check_ids(checks.check_settings)

    assert check_id == "tachycore.E001" and key in message
    with pytest.raises(ImproperlyConfigured, match=key):
        getattr(tachycore_settings, key)


def test_checks__bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("TACHYCORE_FLUSH_RETRIES", "-3")
    tachycore_settings.reset()

    [(check_id, message)] = _check_ids(checks.check_settings)

    assert check_id == "tachycore.E001" and "TACHYCORE_FLUSH_RETRIES" in message


@pytest.mark.django_db
def test_checks__bad_values_stop_manage_py_at_start(settings):
    settings.TACHYCORE = {"STATE_CHECK_INTERVAL": "whenever"}

    with pytest.raises(SystemCheckError, match="STATE_CHECK_INTERVAL"):
        call_command("check")


def test_checks__registry_that_cannot_be_imported(settings):
    settings.TACHYCORE = {"REGISTRY": "tachycore.registry.NoSuchRegistry"}

    [(check_id, message)] = _check_ids(checks.check_registry)

    assert check_id == "tachycore.E002" and "tachycore.registry.NoSuchRegistry" in message


def test_checks__sqlite_without_concurrency_settings_warns():
    databases = {
        "ready": configure_sqlite({"ENGINE": "django.db.backends.sqlite3", "NAME": "y"}),
        "other": {"ENGINE": "django.db.backends.sqlite3", "NAME": "x"},
        "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "z"},
    }

    messages = [(m.id, m.msg) for m in checks.sqlite_problems(databases)]

    assert [check_id for check_id, _ in messages] == ["tachycore.W010"]
    assert "'other'" in messages[0][1]


def test_configure_sqlite__adds_wal_timeout_and_immediate_transactions():
    database = configure_sqlite({"ENGINE": "django.db.backends.sqlite3", "NAME": "x.sqlite3"})

    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["OPTIONS"]["timeout"] == 20
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]


def test_configure_sqlite__keeps_what_the_site_set_and_ignores_other_engines():
    database = configure_sqlite({"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 5}})
    postgres = {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}

    assert database["OPTIONS"]["timeout"] == 5
    assert configure_sqlite(postgres) is postgres
