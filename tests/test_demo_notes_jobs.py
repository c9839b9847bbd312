"""The demo's notes plugin enqueues a notes.word_count job with each note created through its API."""

from __future__ import annotations

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from demo.notes.jobs import WORD_COUNT, word_count
from demo.notes.models import Note
from demo.notes.plugin import WELCOME_TITLE
from jobs.handlers import handlers
from jobs.models import Job, JobStatus
from tests.helpers.processes import manage


@pytest.fixture
def notes(db):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.fixture
def member_client(client, db):
    client.force_login(get_user_model().objects.create_user("member", password="member-pass"))
    return client


def jobs_of_new_notes():
    """Jobs of notes other than the welcome note (whose job ``install()`` enqueued)."""
    welcome = Note.objects.filter(title=WELCOME_TITLE).values_list("pk", flat=True).first()
    return Job.objects.exclude(payload__note=welcome)


def post_note(client, **fields):
    return client.post("/api/notes/", json.dumps(fields), content_type="application/json")


@pytest.mark.django_db
def test_create__enqueues_one_word_count_job_for_the_new_note(member_client, notes):
    response = post_note(member_client, title="Shopping list", body="eggs, milk and bread")

    assert response.status_code == 201, response.content
    assert response.json()["word_count"] is None  # counted later, by runjobs
    [job] = jobs_of_new_notes()
    assert (job.topic, job.status, job.payload) == (WORD_COUNT, JobStatus.PENDING, {"note": response.json()["id"]})


@pytest.mark.django_db
def test_create__refused_note_enqueues_nothing(member_client, notes):
    response = post_note(member_client, body="no title")

    assert response.status_code == 400
    assert not jobs_of_new_notes().exists()
    assert not Note.objects.filter(body="no title").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("fields, field", [({"title": 226}, "title"), ({"title": "t", "body": ["b"]}, "body"),
                                           ({"title": "t\u0000"}, "title"),
                                           ({"title": " " + "t" * 200}, "title")])  # over 200 as sent
def test_create__a_title_or_body_that_is_no_string_or_too_long_400_enqueues_nothing(member_client, notes, fields, field):
    response = post_note(member_client, **fields)

    assert response.status_code == 400 and field in response.json()
    assert not jobs_of_new_notes().exists() and not Note.objects.exclude(title=WELCOME_TITLE).exists()


@pytest.mark.django_db
def test_create__a_form_body_415(member_client, notes):
    response = member_client.post("/api/notes/", {"title": "t", "body": "b"})

    assert response.status_code == 415 and "detail" in response.json()
    assert not Note.objects.exclude(title=WELCOME_TITLE).exists()


@pytest.mark.django_db
def test_create__a_failed_enqueue_leaves_no_note(member_client, notes, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise RuntimeError("the queue refused the job")

    monkeypatch.setattr("jobs.store.JobStore.enqueue", refuse)

    with pytest.raises(RuntimeError, match="the queue refused the job"):
        post_note(member_client, title="Lost", body="never stored")

    assert not Note.objects.filter(title="Lost").exists()


@pytest.mark.django_db
def test_create__rolled_back_with_the_callers_transaction_leaves_neither_note_nor_job(member_client, notes):
    with transaction.atomic():
        assert post_note(member_client, title="Draft", body="one two").status_code == 201
        assert jobs_of_new_notes().count() == 1
        transaction.set_rollback(True)

    assert not Note.objects.filter(title="Draft").exists()
    assert not jobs_of_new_notes().exists()


@pytest.mark.django_db
def test_handler__counts_title_and_body_words_and_stores_the_count():
    note = Note.objects.create(title="Two words", body="  three\nmore\twords  ")
    job = Job(topic=WORD_COUNT, payload={"note": note.pk})

    assert word_count(job) == {"note": note.pk, "words": 5}

    note.refresh_from_db()
    assert note.word_count == 5


@pytest.mark.django_db
def test_handler__a_deleted_note_is_left_alone():
    note = Note.objects.create(title="Gone", body="soon")
    job = Job(topic=WORD_COUNT, payload={"note": note.pk})
    note.delete()

    assert word_count(job) is None
    assert not Note.objects.exists()


def test_handler__is_registered_for_the_notes_app():
    entry = handlers.get(WORD_COUNT)

    assert entry is not None and entry.func is word_count
    assert entry.app_label == "notes"  # so it runs only while the notes plugin is enabled


@pytest.mark.django_db(transaction=True)
def test_runjobs__counts_the_words_of_a_note_created_through_the_api(client, subprocess_env):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    client.force_login(get_user_model().objects.create_user("member", password="member-pass"))
    created = post_note(client, title="Weekend plans", body="walk the dog, then read a book").json()

    result = manage(subprocess_env, "runjobs", "--burst")

    assert result.returncode == 0, result.stderr
    note = Note.objects.get(pk=created["id"])
    assert note.word_count == 9
    [job] = jobs_of_new_notes()
    assert (job.status, job.result) == (JobStatus.COMPLETED, {"note": note.pk, "words": 9})
    assert client.get("/api/notes/").json()[0]["word_count"] == 9


@pytest.mark.django_db(transaction=True)
def test_runjobs__leaves_the_job_pending_while_notes_is_disabled_and_runs_it_once_enabled(client, subprocess_env):
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    client.force_login(get_user_model().objects.create_user("member", password="member-pass"))
    created = post_note(client, title="Later", body="counted after enable").json()
    call_command("pm", "disable", "notes", stdout=io.StringIO(), stderr=io.StringIO())

    while_disabled = manage(subprocess_env, "runjobs", "--burst")
    status_while_disabled = jobs_of_new_notes().get().status
    call_command("pm", "enable", "notes", stdout=io.StringIO(), stderr=io.StringIO())
    once_enabled = manage(subprocess_env, "runjobs", "--burst")

    assert while_disabled.returncode == 0 and once_enabled.returncode == 0, once_enabled.stderr
    assert status_while_disabled == JobStatus.PENDING
    assert jobs_of_new_notes().get().status == JobStatus.COMPLETED
    assert Note.objects.get(pk=created["id"]).word_count == 4
