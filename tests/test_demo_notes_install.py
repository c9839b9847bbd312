"""The notes plugin's install(): the welcome note gets its word count like every other note."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from demo.notes.jobs import WORD_COUNT
from demo.notes.models import Note
from demo.notes.plugin import WELCOME_TITLE
from jobs.models import Job, JobStatus
from tachycore.manager import plugin_manager
from tests.helpers.processes import manage


def enable_notes() -> None:
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_install__enqueues_the_word_count_of_the_welcome_note():
    enable_notes()

    welcome = Note.objects.get(title=WELCOME_TITLE)
    [job] = Job.objects.filter(topic=WORD_COUNT)
    assert (job.payload, job.status) == ({"note": welcome.pk}, JobStatus.PENDING)


@pytest.mark.django_db
def test_install__run_again_enqueues_no_second_job():
    enable_notes()

    plugin_manager.plugins["notes"].install()

    assert Note.objects.filter(title=WELCOME_TITLE).count() == 1
    assert Job.objects.filter(topic=WORD_COUNT).count() == 1


@pytest.mark.django_db(transaction=True)
def test_runjobs__counts_the_words_of_the_welcome_note(subprocess_env):
    enable_notes()

    result = manage(subprocess_env, "runjobs", "--burst")

    assert result.returncode == 0, result.stderr
    assert Note.objects.get(title=WELCOME_TITLE).word_count == 6  # "Welcome to notes" + "Created by install()."
