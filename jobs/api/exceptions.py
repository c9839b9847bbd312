"""Errors of the jobs API: every one is JSON ``{"detail": ...}`` with its status.

Store errors map to statuses: bad arguments 400, an unknown job 404, a running job 409,
a payload over ``JOBS["MAX_PAYLOAD_SIZE"]`` 413, a topic outside ``JOBS["ALLOWED_TOPICS"]``
403. Anything unexpected is logged and answered with a 500 that carries no traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from jobs import errors as job_errors
from kv.api.exceptions import describe

from .permissions import PermissionClassError

logger = logging.getLogger("jobs.api")


class BadRequest(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


class JobNotFound(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "No such job."
    default_code = "not_found"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The job is being processed."
    default_code = "conflict"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The payload is larger than JOBS['MAX_PAYLOAD_SIZE']."
    default_code = "too_large"


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
    """DRF's handler, with store errors translated, validation errors under ``detail`` (the
    per-field errors stay in ``errors``) and a JSON 500 for everything else."""
    exc = _translated(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        set_rollback()
        if isinstance(exc, PermissionClassError):  # a settings mistake: its message says it all
            logger.error("jobs API refused a request: %s", exc)
        else:
            logger.error("jobs API: unexpected error", exc_info=exc)
        return Response({"detail": "The server could not handle this request; the error is logged."},
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, ValidationError):
        response.data = {"detail": " ".join(describe(response.data)), "errors": response.data}
    return response
