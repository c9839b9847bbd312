"""JOBS settings: defaults, JOBS_<KEY> environment overrides, and the system checks
that report bad values at start."""

from __future__ import annotations

import os

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from jobs import checks
from jobs.conf import JobsDefaults, jobs_settings

DEFAULTS = {
    "DISABLED": False,
    "WORKERS": 4,
    "POLL_INTERVAL": 1.0,
    "LOCK_DURATION": 60.0,
    "BATCH_SIZE": 20,
    "MAX_RETRIES": 3,
    "RETRY_DELAY": 2.0,
    "RETRY_DELAY_MAX": 3600.0,
    "MAX_PAYLOAD_SIZE": 256 * 1024,
    "HTTP_ENABLED": False,
    "ALLOWED_TOPICS": None,
    "AUTO_START": False,
    "SHUTDOWN_TIMEOUT": 30.0,
    "RETENTION": 7 * 86400.0,
    "STATUS_INTERVAL": 10.0,
    "ENQUEUE_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated",
                                   "jobs.api.permissions.CanAddJob"],
    "MANAGE_PERMISSION_CLASSES": ["jobs.api.permissions.HasJobPermission"],
    "THROTTLE_RATES": {"anon": "60/min", "enqueue": "300/min", "read": "600/min", "manage": "60/min"},
}


@pytest.fixture(autouse=True)
def _fresh_jobs_settings():
    # set up before monkeypatch and torn down after it: the cache never outlives an env change
    jobs_settings.reset()
    yield
    jobs_settings.reset()


@pytest.fixture
def no_env(monkeypatch):
    for key in os.environ:
        if key.startswith("JOBS_"):
            monkeypatch.delenv(key)


def jobs_errors(*check_functions) -> list[tuple[str, str]]:
    found = []
    for check in check_functions or (checks.check_settings, checks.check_allowed_topics,
                                     checks.check_permission_classes):
        found.extend((message.id, message.msg) for message in check())
    return found


def test_defaults__every_key(settings, no_env):
    settings.JOBS = {}

    assert {key: getattr(jobs_settings, key) for key in DEFAULTS} == DEFAULTS
    assert set(DEFAULTS) == set(JobsDefaults.__dataclass_fields__)
    assert jobs_errors() == []


def test_defaults__without_a_jobs_setting(settings, no_env):
    del settings.JOBS

    assert jobs_settings.WORKERS == 4
    assert jobs_errors() == []


def test_settings__dict_overrides_defaults(settings, no_env):
    settings.JOBS = {"WORKERS": 2, "POLL_INTERVAL": "250ms", "RETENTION": "2d", "HTTP_ENABLED": True,
                     "ALLOWED_TOPICS": ["reports.*"], "LOCK_DURATION": 90}

    assert jobs_settings.WORKERS == 2
    assert jobs_settings.POLL_INTERVAL == 0.25
    assert jobs_settings.RETENTION == 2 * 86400.0
    assert jobs_settings.HTTP_ENABLED is True
    assert jobs_settings.ALLOWED_TOPICS == ["reports.*"]
    assert jobs_settings.LOCK_DURATION == 90.0
    assert jobs_errors() == []


def test_settings__changes_are_seen_without_restart(settings, no_env):
    settings.JOBS = {"WORKERS": 2}
    assert jobs_settings.WORKERS == 2

    settings.JOBS = {"WORKERS": 3}

    assert jobs_settings.WORKERS == 3


def test_settings__environment_overrides_settings(settings, monkeypatch, no_env):
    settings.JOBS = {"WORKERS": 2, "HTTP_ENABLED": True}
    monkeypatch.setenv("JOBS_WORKERS", "8")
    monkeypatch.setenv("JOBS_HTTP_ENABLED", "false")
    monkeypatch.setenv("JOBS_POLL_INTERVAL", "250ms")
    monkeypatch.setenv("JOBS_ALLOWED_TOPICS", '["reports.*", "mail.send"]')
    monkeypatch.setenv("JOBS_MANAGE_PERMISSION_CLASSES",
                       "rest_framework.permissions.IsAdminUser, rest_framework.permissions.IsAuthenticated")
    jobs_settings.reset()

    assert jobs_settings.WORKERS == 8
    assert jobs_settings.HTTP_ENABLED is False
    assert jobs_settings.POLL_INTERVAL == 0.25
    assert jobs_settings.ALLOWED_TOPICS == ["reports.*", "mail.send"]
    assert jobs_settings.MANAGE_PERMISSION_CLASSES == ["rest_framework.permissions.IsAdminUser",
                                                       "rest_framework.permissions.IsAuthenticated"]
    assert jobs_errors() == []


@pytest.mark.django_db
def test_settings__dispatcher_takes_workers_from_the_environment(monkeypatch, no_env):
    from jobs.dispatcher import Dispatcher

    monkeypatch.setenv("JOBS_WORKERS", "8")
    jobs_settings.reset()

    assert Dispatcher().workers == 8
    assert Dispatcher(workers=2).workers == 2


@pytest.mark.parametrize(("jobs", "key", "words"), [
    ({"WORKERS": 0}, "WORKERS", "at least 1"),
    ({"WORKERS": "many"}, "WORKERS", "whole number"),
    ({"WORKERS": True}, "WORKERS", "whole number"),
    ({"POLL_INTERVAL": "abc"}, "POLL_INTERVAL", "duration"),
    ({"POLL_INTERVAL": 0}, "POLL_INTERVAL", "at least"),
    ({"LOCK_DURATION": "-5s"}, "LOCK_DURATION", "LOCK_DURATION"),
    ({"BATCH_SIZE": 0}, "BATCH_SIZE", "at least 1"),
    ({"MAX_RETRIES": -1}, "MAX_RETRIES", "at least 0"),
    ({"RETRY_DELAY": "soon"}, "RETRY_DELAY", "duration"),
    ({"MAX_PAYLOAD_SIZE": 0}, "MAX_PAYLOAD_SIZE", "at least 1"),
    ({"HTTP_ENABLED": "maybe"}, "HTTP_ENABLED", "true or false"),
    ({"SHUTDOWN_TIMEOUT": "forever"}, "SHUTDOWN_TIMEOUT", "duration"),
    ({"RETENTION": "1w"}, "RETENTION", "duration"),
    ({"ENQUEUE_PERMISSION_CLASSES": "rest_framework.permissions.AllowAny"}, "ENQUEUE_PERMISSION_CLASSES",
     "list"),
    ({"WORKER": 4}, "WORKER", "unknown key"),
])
def test_checks__bad_value_is_e001_naming_the_key(settings, no_env, jobs, key, words):
    settings.JOBS = jobs

    found = jobs_errors(checks.check_settings)

    assert [check_id for check_id, _ in found] == ["jobs.E001"]
    message = found[0][1]
    assert key in message and words in message


def test_checks__bad_value_is_not_read_silently(settings, no_env):
    settings.JOBS = {"WORKERS": 0}

    with pytest.raises(ImproperlyConfigured, match="WORKERS"):
        jobs_settings.WORKERS  # noqa: B018
    assert jobs_settings.BATCH_SIZE == 20  # the other keys still work


def test_checks__bad_environment_value_names_the_variable(settings, monkeypatch, no_env):
    settings.JOBS = {}
    monkeypatch.setenv("JOBS_WORKERS", "eight")
    jobs_settings.reset()

    [(check_id, message)] = jobs_errors(checks.check_settings)

    assert check_id == "jobs.E001"
    assert "JOBS_WORKERS" in message and "eight" in message


def test_checks__jobs_not_a_dict(settings, no_env):
    settings.JOBS = ["WORKERS", 4]

    [(check_id, message)] = jobs_errors(checks.check_settings)

    assert check_id == "jobs.E001"
    assert "JOBS" in message and "dict" in message


def test_checks__every_problem_reported_at_once(settings, no_env):
    settings.JOBS = {"WORKERS": 0, "POLL_INTERVAL": "abc", "COLOUR": "blue"}

    messages = [message for _, message in jobs_errors(checks.check_settings)]

    assert len(messages) == 3
    assert any("WORKERS" in m for m in messages)
    assert any("POLL_INTERVAL" in m for m in messages)
    assert any("COLOUR" in m for m in messages)


@pytest.mark.parametrize("allowed", ["reports.*", {"reports.*": True}, [""], ["reports.*", 3], 5])
def test_checks__allowed_topics_not_a_list_of_patterns_is_e002(settings, no_env, allowed):
    settings.JOBS = {"ALLOWED_TOPICS": allowed}

    found = jobs_errors()

    assert [check_id for check_id, _ in found] == ["jobs.E002"]
    assert "ALLOWED_TOPICS" in found[0][1]


@pytest.mark.parametrize(("key", "classes", "words"), [
    ("ENQUEUE_PERMISSION_CLASSES", ["no.such.Permission"], "no.such.Permission"),
    ("MANAGE_PERMISSION_CLASSES", ["rest_framework.permissions.NoSuchClass"], "NoSuchClass"),
    ("MANAGE_PERMISSION_CLASSES", ["jobs.models.Job"], "not a permission class"),
    ("ENQUEUE_PERMISSION_CLASSES", [42], "42"),
])
def test_checks__permission_class_that_does_not_import_is_e003(settings, no_env, key, classes, words):
    settings.JOBS = {key: classes}

    found = jobs_errors()

    assert [check_id for check_id, _ in found] == ["jobs.E003"]
    assert key in found[0][1] and words in found[0][1]


def test_checks__every_check_has_a_hint(settings, no_env):
    settings.JOBS = {"WORKERS": 0, "ALLOWED_TOPICS": "x", "MANAGE_PERMISSION_CLASSES": ["no.such.Class"]}

    messages = [m for check in (checks.check_settings, checks.check_allowed_topics,
                                checks.check_permission_classes) for m in check()]

    assert sorted(m.id for m in messages) == ["jobs.E001", "jobs.E002", "jobs.E003"]
    assert all(m.hint for m in messages)


@pytest.mark.django_db
def test_checks__registered_with_django(settings, no_env):
    settings.JOBS = {"WORKERS": 0, "ALLOWED_TOPICS": "reports.*",
                     "ENQUEUE_PERMISSION_CLASSES": ["no.such.Permission"]}

    ids = sorted(m.id for m in run_checks() if m.id and m.id.startswith("jobs."))

    assert ids == ["jobs.E001", "jobs.E002", "jobs.E003"]
    with pytest.raises(SystemCheckError, match="WORKERS"):
        call_command("check")
