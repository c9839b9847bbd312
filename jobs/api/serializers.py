"""Request bodies and responses of the jobs API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.models import Job, JobStatus
from jobs.store import EXACT_FINISHED
from jobs.validation import MAX_DEDUPE_KEY, MAX_PRIORITY, MAX_QUEUE_NAME, MIN_PRIORITY
from tachycore.jsontext import holds_nul
from tachycore.rest import QuerySerializer, StringField, WholeNumberField


class NumberField(serializers.FloatField):
    """A number given as a JSON number: no strings or booleans."""

    default_error_messages = {"invalid": "A number (a JSON number) is required."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class AnyJSONField(serializers.JSONField):
    """Any JSON value, ``null`` included."""


class PayloadField(AnyJSONField):
    """A job payload: any JSON value without NUL characters (PostgreSQL's ``jsonb`` cannot
    hold ``\\u0000``, so the API refuses it on every database alike)."""

    default_error_messages = {"nul": "NUL characters (\\u0000) are not allowed in the payload."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if holds_nul(value):
            self.fail("nul")
        return value


class EnqueueSerializer(serializers.Serializer):
    """Body of ``POST /api/jobs/``."""

    # identifiers are stored as sent: no trimming, as in the Python API
    topic = StringField(min_length=1, max_length=255, trim_whitespace=False)
    payload = PayloadField(required=False, allow_null=True, default=None,
                           help_text="Any JSON value; omitted or null stores {}.")
    run_at = serializers.DateTimeField(required=False, help_text="When the job becomes due (ISO 8601).")
    delay = NumberField(required=False, min_value=0, max_value=10**9,
                        help_text="Seconds from now before the job becomes due.")
    priority = WholeNumberField(required=False, default=0, min_value=MIN_PRIORITY, max_value=MAX_PRIORITY)
    max_retries = WholeNumberField(required=False, min_value=0, max_value=1000)
    dedupe_key = StringField(required=False, min_length=1, max_length=MAX_DEDUPE_KEY, trim_whitespace=False,
                             help_text="While a pending job has this key, enqueueing another returns that job.")
    queue_name = StringField(required=False, min_length=1, max_length=MAX_QUEUE_NAME, default="default")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "run_at" in data and "delay" in data:
            raise serializers.ValidationError("give run_at or delay, not both")
        return data


class JobSerializer(serializers.ModelSerializer):
    payload = AnyJSONField()
    result = AnyJSONField(allow_null=True)
    # ignored: DRF's SerializerMetaclass pops declared fields off the class, so this one does
    # not shadow Serializer.errors; the stubs cannot say so (djangorestframework-stubs#78)
    errors = serializers.ListField(child=serializers.DictField())  # type: ignore[assignment]
    workers = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Job
        fields = ["id", "topic", "payload", "status", "priority", "queue_name", "run_at", "locked_until",
                  "locked_by", "attempts", "retries", "max_retries", "last_error", "errors", "result",
                  "dedupe_key", "task_backend", "workers", "created", "updated", "started_at",
                  "attempted_at", "finished_at"]
        read_only_fields = fields


#: made once (see ``tachycore.rest.validated``): ``ENQUEUE`` validates every enqueue's body,
#: ``JOB.to_representation(job)`` is a job's JSON
ENQUEUE = EnqueueSerializer()
JOB = JobSerializer()


class DedupedSerializer(serializers.Serializer):
    """The reply to an enqueue that found a pending job with its dedupe key."""

    id = serializers.IntegerField()
    topic = serializers.CharField()
    status = serializers.CharField()
    deduplicated = serializers.BooleanField()


class JobQuerySerializer(QuerySerializer):
    """Query string of ``GET /api/jobs/``: the filters."""

    status = serializers.ChoiceField(choices=JobStatus.values, required=False)
    topic = serializers.CharField(required=False, max_length=255, trim_whitespace=False)


#: the most jobs a page holds (``page_size``)
MAX_PAGE_SIZE = 500


class PageQuerySerializer(QuerySerializer):
    """Query string of ``GET /api/jobs/``: the page."""

    page = serializers.IntegerField(required=False, min_value=1,
                                    help_text="The page, from 1; a page past the end is a 404.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=MAX_PAGE_SIZE,
                                         help_text=f"Jobs per page (1 to {MAX_PAGE_SIZE}); 50 when omitted.")


class StatsSerializer(serializers.Serializer):
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_topic = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
    oldest_due_age = serializers.FloatField(help_text="Seconds since the oldest due job became due.")
    due = serializers.IntegerField(help_text="Pending jobs that are due now.")
    finished_estimated = serializers.BooleanField(
        help_text=f"True when the completed and failed counts (by_status, by_topic) are estimates: "
                  f"beyond {EXACT_FINISHED:,} finished jobs they are not counted. Pending, processing and "
                  "due jobs are always counted exactly.")
