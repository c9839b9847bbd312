"""Checks on what ``enqueue`` is given; each failure names the argument and the value."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from tachycore.jsontext import MAX_JSON_DEPTH, depth_fault, json_fault, string_fault

from .conf import jobs_settings
from .errors import InvalidOption, InvalidPayload, InvalidPriority, InvalidSchedule, PayloadTooLarge

MIN_PRIORITY, MAX_PRIORITY = -100, 100
MAX_DEDUPE_KEY = 255
MAX_QUEUE_NAME = 100

#: ``json.dumps(payload, allow_nan=False, separators=(",", ":"))`` without a new encoder per call
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def payload_json(payload: Any, topic: str) -> str:
    """The payload as JSON text, refused when it is not JSON, over ``MAX_PAYLOAD_SIZE``, or
    not storable alike on SQLite and PostgreSQL: a NUL character or a lone surrogate in a
    string or key, or more than ``MAX_JSON_DEPTH`` levels of nesting."""
    try:
        text = _ENCODER.encode(payload)
    except (TypeError, ValueError) as e:
        raise InvalidPayload(f"payload of {topic!r} is not JSON-serialisable: {e}") from None
    except RecursionError:  # some hundred levels deep: far over the limit
        raise InvalidPayload(f"payload of {topic!r} {depth_fault()}") from None
    limit = jobs_settings.MAX_PAYLOAD_SIZE
    if len(text) > limit:  # ASCII (non-ASCII is escaped): one byte a character
        raise PayloadTooLarge(f"payload of {topic!r} is {len(text)} bytes of JSON, "
                              f"over JOBS['MAX_PAYLOAD_SIZE'] ({limit})")
    # a NUL: jsonb cannot hold it; a lone surrogate: no database can; refused everywhere alike
    # after the size, which bounds its work; a short text without a backslash (every NUL and
    # non-ASCII character comes escaped) has no NUL, no surrogate and too few brackets to be deep
    fault = None if len(text) <= MAX_JSON_DEPTH and "\\" not in text else json_fault(payload, text)
    if fault is not None:
        raise InvalidPayload(f"payload of {topic!r} {fault}")
    return text


def run_time(now: datetime, run_at: datetime | None, delay: Any) -> datetime:
    """When the job becomes due: ``run_at``, or ``delay`` (seconds or a timedelta) from now."""
    if run_at is not None and delay is not None:
        raise InvalidSchedule("give run_at or delay, not both")
    if run_at is not None:
        if not isinstance(run_at, datetime):
            raise InvalidSchedule(f"run_at must be a datetime, got {run_at!r}")
        if timezone.is_naive(run_at):
            raise InvalidSchedule(f"run_at must be an aware datetime, got {run_at!r}")
        return run_at
    if delay is None:
        return now
    if isinstance(delay, timedelta):
        seconds = delay.total_seconds()
    elif isinstance(delay, int | float) and not isinstance(delay, bool):
        seconds = float(delay)
    else:
        raise InvalidSchedule(f"delay must be seconds or a timedelta, got {delay!r}")
    if seconds < 0 or seconds != seconds:
        raise InvalidSchedule(f"delay cannot be negative, got {delay!r}")
    return now + timedelta(seconds=seconds)


def check_priority(priority: Any) -> int:
    if isinstance(priority, bool) or not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidPriority(f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, "
                              f"got {priority!r}")
    return priority


def check_max_retries(max_retries: Any) -> int:
    if max_retries is None:
        return jobs_settings.MAX_RETRIES
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= 1000:
        raise InvalidOption(f"max_retries must be a whole number from 0 to 1000, got {max_retries!r}")
    return max_retries


def check_dedupe_key(dedupe_key: Any) -> str | None:
    if dedupe_key is None:
        return None
    if not isinstance(dedupe_key, str) or not dedupe_key or len(dedupe_key) > MAX_DEDUPE_KEY \
            or string_fault(dedupe_key) is not None:
        raise InvalidOption(f"dedupe_key must be a non-empty string of at most {MAX_DEDUPE_KEY} "
                            f"characters, without NUL or lone surrogate, got {dedupe_key!r}")
    return dedupe_key


def check_queue_name(queue_name: Any) -> str:
    if not isinstance(queue_name, str) or not queue_name or len(queue_name) > MAX_QUEUE_NAME \
            or string_fault(queue_name) is not None:
        raise InvalidOption(f"queue_name must be a non-empty string of at most {MAX_QUEUE_NAME} "
                            f"characters, without NUL or lone surrogate, got {queue_name!r}")
    return queue_name
