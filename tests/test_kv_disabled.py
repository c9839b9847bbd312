"""``KV["DISABLED"]`` (env ``KV_DISABLED``): kv stays installed and migrated but does nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

import kv
from kv.cache import KVCache
from kv.errors import KVDisabled
from kv.models import KVEntry
from kv.receivers import flush_l1, invalidate_from_elsewhere
from kv.schedules import SCHEDULE_NAME, register_cleanup_schedule
from tests.helpers.processes import manage

pytestmark = pytest.mark.django_db

OFF = {"DISABLED": True}


@pytest.fixture
def disabled(settings):
    settings.KV = dict(OFF)
    return settings


def cleanup_schedules():
    from django_q.models import Schedule

    return Schedule.objects.filter(name=SCHEDULE_NAME)


def test_get_store__none_when_disabled(disabled):
    assert kv.get_store() is None


def test_get_store__none_when_disabled_from_the_environment(app_env):
    app_env.set("KV_DISABLED", "true")

    assert kv.get_store() is None


def test_get_store__back_when_enabled_again(disabled):
    disabled.KV = {}

    assert kv.get_store().set("k", 1) is True


def test_api__no_route_while_disabled_even_with_http_enabled(admin_client, settings):
    settings.KV = {**OFF, "HTTP_ENABLED": True}

    response = admin_client.get("/api/kv/keys/")

    assert response.status_code == 404


def test_api__detail_route_404_while_disabled(admin_client, settings):
    settings.KV = {**OFF, "HTTP_ENABLED": True}

    response = admin_client.put("/api/kv/keys/k/", {"value": 1}, content_type="application/json")

    assert response.status_code == 404
    assert not KVEntry.objects.exists()


def test_kvcache__raises_kv_disabled_naming_the_setting(disabled):
    with pytest.raises(KVDisabled, match=r"KV\['DISABLED'\]"):
        KVCache("test", {}).set("k", "v")


def test_kvcache__writes_nothing_while_disabled(disabled):
    with pytest.raises(KVDisabled):
        KVCache("test", {}).add("k", "v")

    assert not KVEntry.objects.exists()


def test_receivers__invalidation_from_elsewhere_is_ignored(disabled):
    invalidate_from_elsewhere({"keys": ["k"]})
    flush_l1()  # neither fails without a store


def test_schedule__not_registered_while_disabled(disabled):
    assert register_cleanup_schedule() is None
    assert not cleanup_schedules().exists()


def test_schedule__row_removed_by_migrate_once_disabled(settings):
    register_cleanup_schedule()
    settings.KV = dict(OFF)

    call_command("migrate", verbosity=0)

    assert not cleanup_schedules().exists()


@pytest.mark.django_db(transaction=True)
def test_kv_cleanup__disabled_exits_0_saying_so(subprocess_env):
    result = manage({**subprocess_env, "KV_DISABLED": "true"}, "kv_cleanup")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "kv is disabled (KV['DISABLED']): nothing to clean up.\n"


@pytest.mark.django_db(transaction=True)
def test_check__passes_while_disabled(subprocess_env):
    result = manage({**subprocess_env, "KV_DISABLED": "true"}, "check", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
