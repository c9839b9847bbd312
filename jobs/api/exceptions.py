"""Errors of the jobs API: every one is JSON ``{"detail": ...}`` with its status.

Store errors map to statuses: bad arguments 400, an unknown job 404, a running job 409,
a payload over ``JOBS["MAX_PAYLOAD_SIZE"]`` 413, a topic outside ``JOBS["ALLOWED_TOPICS"]``
403. Anything unexpected is logged and answered with a 500 that carries no traceback (see
``tachycore.rest.handle_exception``).
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response

from jobs import errors as job_errors
from tachycore import rest
from tachycore.rest import BadRequest

logger = logging.getLogger("jobs.api")


class JobNotFound(NotFound):
    default_detail = "No such job."


class Conflict(rest.Conflict):
    default_detail = "The job is being processed."


class PayloadTooLarge(rest.TooLarge):
    default_detail = "The payload is larger than JOBS['MAX_PAYLOAD_SIZE']."


class TopicNotAllowed(APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "This topic may not be enqueued over HTTP."
    default_code = "topic_not_allowed"


def _translated(exc: Exception) -> Exception:
    if isinstance(exc, job_errors.JobNotFound):
        return JobNotFound(str(exc))
    if isinstance(exc, job_errors.JobRunning | job_errors.DedupeConflict):
        return Conflict(str(exc))
    if isinstance(exc, job_errors.PayloadTooLarge):
        return PayloadTooLarge(str(exc))
    if isinstance(exc, job_errors.JobsError):
        return BadRequest(str(exc))
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The shared handler of ``tachycore.rest``, with the store's errors translated."""
    return rest.handle_exception(_translated(exc), context, logger=logger, api_name="jobs API")
