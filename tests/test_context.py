"""Who is calling: the kernel runs each entry into a plugin as that plugin."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.dispatch import Signal
from django.tasks import default_task_backend
from django.test import AsyncClient

import jobs
from jobs.dispatcher import Dispatcher
from jobs.models import Job
from tachycore.context import Thread, acting_as, current_plugin
from tachycore.instances import Instances
from tachycore.manager import PluginManager
from tachycore.plugins import Plugin
from tachycore.registry import MemoryRegistry
from tests.plugin_apps.toolbox import tasks as toolbox_tasks

ROOT = Path(__file__).resolve().parent.parent

# -- the context variable ----------------------------------------------------------------


def test_current_plugin__is_none_for_the_host_site():
    assert current_plugin() is None


def test_acting_as__sets_the_plugin_for_the_block_and_restores_the_callers():
    with acting_as("notes"):
        assert current_plugin() == "notes"
        with acting_as("audit"):
            assert current_plugin() == "audit"
        with acting_as(None):
            assert current_plugin() is None
        assert current_plugin() == "notes"
    assert current_plugin() is None


def test_acting_as__restores_the_caller_when_the_block_raises():
    with pytest.raises(RuntimeError), acting_as("notes"):
        raise RuntimeError("boom")

    assert current_plugin() is None


def seen_in(thread_class: type[threading.Thread]) -> list[str | None]:
    seen: list[str | None] = []
    with acting_as("notes"):
        thread = thread_class(target=lambda: seen.append(current_plugin()))
    thread.start()  # started outside the block: the context is the creator's at creation
    thread.join()
    return seen


def test_thread__runs_in_the_context_of_its_creator():
    assert seen_in(Thread) == ["notes"]


def test_plain_thread__starts_as_the_host_site():
    assert seen_in(threading.Thread) == [None]


# -- entries into a plugin -----------------------------------------------------------------


@pytest.mark.django_db
def test_plugin_view__runs_as_its_plugin(client):
    response = client.get("/api/toolbox/whoami/")

    assert response.json() == {"plugin": "toolbox"}
    assert current_plugin() is None  # nothing leaks into the caller


@pytest.mark.django_db(transaction=True)
def test_plugin_async_view__runs_as_its_plugin_across_awaits():
    response = asyncio.run(AsyncClient().get("/api/toolbox/whoami-async/"))

    assert response.json() == {"plugin": "toolbox"}


@pytest.mark.django_db(transaction=True)
def test_job_handler__runs_as_the_plugin_of_its_app_whatever_the_payload_says():
    job = jobs.get_job_store().enqueue("toolbox.whoami", {"plugin": "notes", "acting_as": "notes"})

    Dispatcher(burst=True, workers=1).run()

    assert Job.objects.get(pk=job.id).result == {"plugin": "toolbox"}


@pytest.mark.django_db(transaction=True)
def test_task__runs_as_the_plugin_of_its_module():
    result = toolbox_tasks.whoami.enqueue()

    Dispatcher(burst=True, workers=1).run()

    assert default_task_backend.get_result(result.id).return_value == "toolbox"


def test_connected_receiver__runs_as_the_plugin_that_connected_it():
    signal, seen = Signal(), []
    plugin, own = Plugin(None), Instances()
    plugin.name = "notes"
    plugin.attach(lambda name: True, own)
    own.activate("notes", plugin, 0)
    plugin.connect(signal, lambda sender, **kwargs: seen.append(current_plugin()))

    signal.send(sender=None)

    assert seen == ["notes"]


class WhoRunsHooks(Plugin):
    """Records, for each hook, the plugin the kernel ran it as."""

    def __init__(self, name: str, seen: list[tuple[str, str | None]]) -> None:
        super().__init__(None)
        self.name, self.seen = name, seen


for _hook in ("after_add", "install", "before_enable", "before_load", "load", "after_enable",
              "before_disable", "after_disable", "before_remove", "after_remove"):
    setattr(WhoRunsHooks, _hook, lambda self, _h=_hook: self.seen.append((_h, current_plugin())))


@pytest.mark.django_db
def test_lifecycle_hooks__run_as_their_plugin():
    seen: list[tuple[str, str | None]] = []
    manager = PluginManager(registry=MemoryRegistry(), plugins=[WhoRunsHooks("shop", seen)])

    manager.enable("shop")
    manager.remove("shop", force=True)

    assert [hook for hook, _ in seen] == [
        "after_add", "install", "before_enable", "before_load", "load", "after_enable",
        "before_disable", "after_disable", "before_remove", "after_remove"]
    assert {plugin for _, plugin in seen} == {"shop"}


@pytest.mark.django_db
def test_load_at_start_of_a_process__runs_as_the_plugin():
    seen: list[tuple[str, str | None]] = []
    registry = MemoryRegistry()
    PluginManager(registry=registry, plugins=[WhoRunsHooks("shop", seen)]).enable("shop")
    seen.clear()

    another_process = PluginManager(registry=registry, plugins=[WhoRunsHooks("shop", seen)])
    assert another_process.is_enabled("shop")

    assert seen == [("before_load", "shop"), ("load", "shop")]


# -- management commands -------------------------------------------------------------------


def test_plugin_command__runs_as_its_plugin_through_call_command():
    out = io.StringIO()

    call_command("whoami", stdout=out)

    assert out.getvalue().strip() == "toolbox"
    assert current_plugin() is None


@pytest.mark.django_db(transaction=True)
def test_plugin_command__runs_as_its_plugin_through_manage_py(subprocess_env):
    result = subprocess.run([sys.executable, "manage.py", "whoami"], cwd=ROOT, env=subprocess_env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "toolbox"


def test_command_of_an_app_that_is_no_plugin__keeps_the_callers_context():
    from tachycore.management.commands.pm import Command as PluginManagerCommand
    from tachycore.management.plugin_commands import plugin_of_command

    assert plugin_of_command(PluginManagerCommand()) is None
    seen = []
    with acting_as("notes"):
        call_command(RecordsItsPlugin(seen))

    assert seen == ["notes"]


class RecordsItsPlugin(BaseCommand):
    """A command of no plugin's app (defined in the tests package)."""

    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def handle(self, *args, **options):
        self.seen.append(current_plugin())
