"""Request bodies and responses of the jobs API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from jobs.models import Job, JobStatus
from jobs.validation import MAX_DEDUPE_KEY, MAX_PRIORITY, MAX_QUEUE_NAME, MIN_PRIORITY


class WholeNumberField(serializers.IntegerField):
    """An integer given as a JSON number: no strings, booleans or fractions."""

    default_error_messages = {"invalid": "A whole number (a JSON integer) is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class AnyJSONField(serializers.JSONField):
    """Any JSON value, ``null`` included."""


class EnqueueSerializer(serializers.Serializer):
    """Body of ``POST /api/jobs/``."""

    topic = serializers.CharField(max_length=255)
    payload = AnyJSONField(required=False, allow_null=True, default=None)
    run_at = serializers.DateTimeField(required=False, help_text="When the job becomes due (ISO 8601).")
    delay = serializers.FloatField(required=False, min_value=0, max_value=10**9,
                                   help_text="Seconds from now before the job becomes due.")
    priority = WholeNumberField(required=False, default=0, min_value=MIN_PRIORITY, max_value=MAX_PRIORITY)
    max_retries = WholeNumberField(required=False, min_value=0, max_value=1000)
    dedupe_key = serializers.CharField(required=False, max_length=MAX_DEDUPE_KEY)
    queue_name = serializers.CharField(required=False, max_length=MAX_QUEUE_NAME, default="default")

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        if "run_at" in data and "delay" in data:
            raise serializers.ValidationError("give run_at or delay, not both")
        return data


class JobSerializer(serializers.ModelSerializer):
    payload = AnyJSONField()
    result = AnyJSONField(allow_null=True)
    errors = serializers.ListField(child=serializers.DictField())
    workers = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = Job
        fields = ["id", "topic", "payload", "status", "priority", "queue_name", "run_at", "locked_until",
                  "locked_by", "attempts", "retries", "max_retries", "last_error", "errors", "result",
                  "dedupe_key", "task_backend", "workers", "created", "updated", "started_at",
                  "attempted_at", "finished_at"]
        read_only_fields = fields


class JobQuerySerializer(serializers.Serializer):
    """Query string of ``GET /api/jobs/``."""

    status = serializers.ChoiceField(choices=JobStatus.values, required=False)
    topic = serializers.CharField(required=False, max_length=255)


class StatsSerializer(serializers.Serializer):
    by_status = serializers.DictField(child=serializers.IntegerField())
    by_topic = serializers.DictField(child=serializers.DictField(child=serializers.IntegerField()))
    oldest_due_age = serializers.FloatField(help_text="Seconds since the oldest due job became due.")
    due = serializers.IntegerField(help_text="Pending jobs that are due now.")


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
