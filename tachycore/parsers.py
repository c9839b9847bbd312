"""The JSON body parser of every API of a site: kv's, jobs' and the demo's (``REST_FRAMEWORK
["DEFAULT_PARSER_CLASSES"]``).

A module of its own, apart from ``tachycore.rest``: DRF imports the classes its settings name
while it defines ``APIView``, so this module must not import ``rest_framework.views`` (which
``tachycore.rest`` does), or the two imports would wait on each other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer

from .jsontext import (
    MAX_JSON_DEPTH,
    SURROGATE_FAULT,
    depth_fault,
    json_holds_lone_surrogate,
    text_too_deep,
)

#: a request body may nest one level deeper than the values it carries: its own object
#: (``{"value": ...}``, ``{"payload": ...}``) holds them
MAX_BODY_DEPTH = MAX_JSON_DEPTH + 1


class BodyTooLarge(APIException):
    """413: a request body over Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE."
    default_code = "too_large"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _read_body(stream: IO[bytes], parser_context: Mapping[str, Any]) -> bytes:
    """The body, read up to ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes; ``BodyTooLarge`` past it,
    told by the declared length before anything is read, or by what arrives."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    request = parser_context.get("request")
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
    except ValueError:
        declared = 0
    body = b"" if declared > limit else stream.read(limit + 1)
    if declared > limit or len(body) > limit:
        raise BodyTooLarge(f"the request body is over {limit} bytes (DATA_UPLOAD_MAX_MEMORY_SIZE)")
    return body


class JSONBodyParser(BaseParser):
    """JSON bodies: malformed JSON, a lone surrogate in a string or key, and nesting deeper
    than ``MAX_BODY_DEPTH`` are 400s, a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` a 413, each
    with a JSON ``detail``.

    A ``BaseParser``, not a ``JSONParser`` subclass: DRF reads ``request.body`` itself before
    it calls a ``JSONParser``, and Django's ``RequestDataTooBig`` then escapes every parser
    (a 500); this one reads the stream, up to the limit, so ``request.body`` cannot be read
    after it. The depth is measured without recursion: no ``RecursionError`` reaches a view.
    """

    media_type = "application/json"
    renderer_class = JSONRenderer  # what DRF's browsable API writes its raw-data form with

    def parse(self, stream: IO[bytes], media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        parser_context = parser_context or {}
        body = _read_body(stream, parser_context)
        try:
            text = body.decode(parser_context.get("encoding") or settings.DEFAULT_CHARSET)
            data = json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:  # some hundred levels: Python's parser gives up
            raise ParseError(f"JSON parse error - the body {depth_fault(MAX_BODY_DEPTH)}") from None
        except (ValueError, LookupError) as e:  # bad JSON, bad bytes (a ValueError), unknown charset
            raise ParseError(f"JSON parse error - {e}") from None
        if text_too_deep(text, MAX_BODY_DEPTH):
            raise ParseError(f"JSON parse error - the body {depth_fault(MAX_BODY_DEPTH)}")
        if json_holds_lone_surrogate(data, text):
            raise ParseError(f"JSON parse error - a string or key {SURROGATE_FAULT}")
        return data
