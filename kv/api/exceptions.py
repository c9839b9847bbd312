"""Errors of the API, and the handler that turns every error into ``{"detail": ...}``.

Store errors map to statuses: a missing key 404, ``WrongType``/``NotAnInteger``/``Overflow``
409, ``InvalidKey``/``InvalidValue`` 400; a value over ``KV["MAX_VALUE_SIZE"]`` is 413 (the
views measure it before the store does). Anything unexpected is logged and answered with a
500 that carries no traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from kv import errors as kv_errors
from kv.errors import InvalidKey, InvalidValue, NotAnInteger, Overflow, WrongType

from .permissions import PermissionClassError

logger = logging.getLogger("kv.api")


class BadRequest(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


class KeyNotFound(APIException):
    status_code = status.HTTP_404_NOT_FOUND
    default_detail = "No such key."
    default_code = "not_found"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The key holds data this operation cannot apply to."
    default_code = "conflict"


class ValueTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The value is larger than KV['MAX_VALUE_SIZE']."
    default_code = "too_large"


def _translated(exc: Exception) -> Exception:
    if isinstance(exc, WrongType | NotAnInteger | Overflow):
        return Conflict(str(exc))
    if isinstance(exc, kv_errors.ValueTooLarge):
        # the views measure values before the store does; this catches the sizes only the
        # store can see (a hash merged with its new fields). kv.errors has no size error of its own.
        return ValueTooLarge(str(exc))
    if isinstance(exc, InvalidKey | InvalidValue):
        return BadRequest(str(exc))
    return exc


def describe(errors: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Flatten DRF's validation errors into ``"field: message"`` lines."""
    if isinstance(errors, dict):
        return [
            line
            for name, nested in errors.items()
            for line in describe(nested, path if name == api_settings.NON_FIELD_ERRORS_KEY else (*path, str(name)))
        ]
    if isinstance(errors, list):
        return [line for nested in errors for line in describe(nested, path)]
    return [f"{'.'.join(path)}: {errors}" if path else str(errors)]


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's handler, with store errors translated, validation errors under ``detail`` (the
    per-field errors stay in ``errors``) and a JSON 500 for everything else."""
    exc = _translated(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        set_rollback()
        if isinstance(exc, PermissionClassError):
            logger.error("kv API refused a request: %s", exc)
        else:
            logger.error("kv API: unexpected error", exc_info=exc)
        return Response({"detail": "The server could not handle this request; the error is logged."},
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, ValidationError):
        response.data = {"detail": " ".join(describe(response.data)), "errors": response.data}
    return response
