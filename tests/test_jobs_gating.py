"""Jobs held back because their plugin is not enabled: what runjobs counts and names
(``jobs.gating``). The demo's notes plugin starts "not added" in the test database."""

from __future__ import annotations

import pytest

import jobs
from jobs.gating import Held, blocked_topics, describe_held, held_by_plugin
from tachycore.manager import plugin_manager
from tests.helpers.rows import disable_in_registry
from tests.plugin_apps.toolbox import tasks

pytestmark = pytest.mark.django_db

WORD_COUNT = "notes.word_count"


@pytest.fixture
def store():
    return jobs.get_job_store()


def test_held_by_plugin__counts_due_jobs_of_a_plugin_not_added(store):
    store.enqueue_many([{"topic": WORD_COUNT, "payload": {"note": n}} for n in range(2)])
    store.enqueue(WORD_COUNT, {"note": 3}, delay=3600)  # not due: held by its time, not its plugin
    store.enqueue("toolbox.echo")  # its plugin is enabled

    assert held_by_plugin() == [Held("notes", "not added", 2)]


def test_held_by_plugin__a_plugin_disabled_after_use_reads_disabled(store):
    plugin_manager.enable("notes")  # its install() enqueues the welcome note's word count
    plugin_manager.disable("notes")
    store.enqueue(WORD_COUNT, {"note": 1})

    assert held_by_plugin() == [Held("notes", "disabled", 2)]


def test_held_by_plugin__counts_the_tasks_of_a_disabled_plugin(store):
    disable_in_registry("toolbox")
    tasks.add.enqueue(1, 2)
    store.enqueue("toolbox.echo")
    store.enqueue(WORD_COUNT, {"note": 1})

    assert held_by_plugin() == [Held("toolbox", "disabled", 2), Held("notes", "not added", 1)]


def test_held_by_plugin__only_the_topics_named(store):
    disable_in_registry("toolbox")
    store.enqueue("toolbox.echo")
    store.enqueue("toolbox.record")

    assert held_by_plugin(["toolbox.record"]) == [Held("toolbox", "disabled", 1)]


def test_held_by_plugin__nothing_when_every_plugin_is_enabled(store):
    plugin_manager.enable("notes")
    store.enqueue(WORD_COUNT, {"note": 1})

    assert held_by_plugin() == []


def test_blocked_topics__names_the_handler_topics_of_a_plugin_not_added():
    assert blocked_topics() == {"bluegreen": ["bluegreen.work"], "notes": [WORD_COUNT]}


def test_describe_held__totals_then_each_plugin_with_the_command_that_enables_it():
    held = [Held("notes", "not enabled", 10), Held("billing", "disabled", 2)]

    assert describe_held(held) == ("12 held: 10 for notes (not enabled: manage.py pm enable notes), "
                                   "2 for billing (disabled: manage.py pm enable billing)")


def test_describe_held__zero_when_nothing_is_held():
    assert describe_held([]) == "0 held"
