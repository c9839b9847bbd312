"""Errors of the API, and the handler that turns every error into ``{"detail": ...}``.

Store errors map to statuses: a missing key 404, ``WrongType``/``NotAnInteger``/``Overflow``
409, ``InvalidKey``/``InvalidValue`` 400 (a pattern past its limits and a malformed scan
cursor too); a value over ``KV["MAX_VALUE_SIZE"]`` is 413 (the views measure it before the
store does); a search of keys cancelled at ``KV["KEYS_TIMEOUT"]`` is 503: the pattern was
allowed, the database was too slow for it at the time (a narrower pattern answers).
Anything unexpected is logged and answered with a 500 that carries no traceback (see
``tachycore.rest.handle_exception``).
"""

from __future__ import annotations

import logging
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.response import Response

from kv import errors as kv_errors
from kv.errors import InvalidKey, InvalidValue, NotAnInteger, Overflow, SearchTimeout, WrongType
from tachycore import rest
from tachycore.rest import BadRequest

logger = logging.getLogger("kv.api")


class KeyNotFound(NotFound):
    default_detail = "No such key."


class Conflict(rest.Conflict):
    default_detail = "The key holds data this operation cannot apply to."


class ValueTooLarge(rest.TooLarge):
    default_detail = "The value is larger than KV['MAX_VALUE_SIZE']."


class SearchTooSlow(APIException):
    """503: a search of keys that PostgreSQL cancelled at ``KV["KEYS_TIMEOUT"]``."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The search for keys took longer than KV['KEYS_TIMEOUT'] and was cancelled."
    default_code = "search_timeout"


def _translated(exc: Exception) -> Exception:
    if isinstance(exc, WrongType | NotAnInteger | Overflow):
        return Conflict(str(exc))
    if isinstance(exc, kv_errors.ValueTooLarge):
        # the views measure values before the store does; this catches the sizes only the
        # store can see (a hash merged with its new fields). kv.errors has no size error of its own.
        return ValueTooLarge(str(exc))
    if isinstance(exc, InvalidKey | InvalidValue):
        return BadRequest(str(exc))
    if isinstance(exc, SearchTimeout):
        return SearchTooSlow(str(exc))
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """The shared handler of ``tachycore.rest``, with the store's errors translated."""
    return rest.handle_exception(_translated(exc), context, logger=logger, api_name="kv API")
