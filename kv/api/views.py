"""The key-value API: one viewset over ``kv.get_store()``.

A key travels URL-encoded in the path and may hold any character, "/" included, so
``/keys/a/incr/`` is both the ``incr`` action of the key "a" and the URL of the key "a/incr".
The router tries the actions first; a method an action does not take (``GET``, ``PUT`` or
``DELETE`` on ``.../incr/``) goes to the key whose name ends with the suffix. Only ``GET
.../hash/`` stays ambiguous: it reads the hash of the key before the suffix.
"""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.viewsets import ViewSet

from kv import get_store
from kv.conf import kv_settings
from kv.scans import MAX_COUNT
from kv.sql.glob import MAX_PATTERN_LENGTH, MAX_PATTERN_WILDCARDS
from kv.store import KVStore
from tachycore.jsontext import holds_nul
from tachycore.parsers import JSONBodyParser
from tachycore.rest import JSONNegotiation, ThrottledAuthentication, error_responses

from . import serializers as s
from .exceptions import BadRequest, KeyNotFound, ValueTooLarge, exception_handler
from .permissions import KVPermission
from .throttles import KVThrottle

#: the rows a page of ``GET /keys/`` reads at most (the store's ``scan`` reads no more)
SCAN_ROWS = MAX_COUNT
#: the methods of the key's own URL, where a method an action does not take is sent
_KEY_METHODS = {"get": "retrieve", "head": "retrieve", "put": "update", "delete": "destroy"}

KEY_PARAMETER = OpenApiParameter(
    "key", str, OpenApiParameter.PATH,
    description='The key, URL-encoded: "a/b" is a%2Fb (a/b works too), "50%" is 50%25.',
)


class KVSchema(AutoSchema):
    """Every kv response is one JSON object: ``GET /keys/`` too, though its action is ``list``."""

    def _is_list_view(self, serializer: Any = None) -> bool:
        return False


def _store() -> KVStore:
    store = get_store()
    if store is None:  # the URLs resolve only with kv installed, enabled and not disabled
        raise RuntimeError("kv is not in INSTALLED_APPS, or KV['DISABLED'] is true")
    return store


def checked_value(key: str, value: Any) -> Any:
    """``value`` if the store can keep it: no NUL character (PostgreSQL refuses them) and at
    most ``KV["MAX_VALUE_SIZE"]`` bytes as the store encodes it."""
    if holds_nul(value):
        raise BadRequest(f"the value for key {key!r} contains a NUL character, which cannot be stored")
    size = len(json.dumps(value, allow_nan=False, separators=(",", ":")).encode())
    if size > kv_settings.MAX_VALUE_SIZE:
        raise ValueTooLarge(
            f"the value for key {key!r} is {size} bytes as JSON; KV['MAX_VALUE_SIZE'] is {kv_settings.MAX_VALUE_SIZE}"
        )
    return value


def _valid(serializer_class: type, data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


@extend_schema_view(
    list=extend_schema(summary="List keys", operation_id="kv_keys_list", parameters=[s.KeyQuerySerializer],
                       description="A page of the live keys matching a Redis glob, sorted: at most `limit` "
                                   f"keys among the next {SCAN_ROWS} in key order from `cursor`; "
                                   "`next` is the cursor of the next page (a page may hold fewer keys "
                                   "than `limit`, or none, before the last). "
                                   f"A pattern has at most {MAX_PATTERN_LENGTH} characters and "
                                   f"{MAX_PATTERN_WILDCARDS} wildcards (400 past them), a cursor is 0 "
                                   "or a `next` (400 otherwise); on PostgreSQL a page taking longer "
                                   "than `KV['KEYS_TIMEOUT']` is cancelled (503).",
                       responses={200: s.KeyListSerializer, **error_responses(400, 403, 503)}),
    retrieve=extend_schema(summary="Read a key", parameters=[KEY_PARAMETER],
                           description="The value (or a hash's fields), its type and seconds left.",
                           responses={200: s.KeySerializer, **error_responses(400, 403, 404)}),
    update=extend_schema(summary="Set a value", parameters=[KEY_PARAMETER], request=s.SetValueSerializer,
                         description="Store any JSON value, replacing what the key held and its TTL.",
                         responses={200: s.KeySerializer, **error_responses(400, 403, 413)}),
    destroy=extend_schema(summary="Delete a key", parameters=[KEY_PARAMETER],
                          description="Delete the key, whatever it holds.",
                          responses={204: None, **error_responses(400, 403, 404)}),
)
class KeyViewSet(ThrottledAuthentication, ViewSet):
    """Keys of the store: list, read, set, delete, increment, expire, and hash fields.

    A ``ViewSet``, not a ``GenericViewSet``: there is no queryset, so ``get_object()`` and
    the model mixins have nothing to work on (and ``OPTIONS`` would call them).
    """

    permission_classes = [KVPermission]
    throttle_classes = [KVThrottle]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONBodyParser]
    content_negotiation_class = JSONNegotiation
    lookup_field = "key"
    lookup_value_converter = "kvkey"
    schema = KVSchema()

    def get_exception_handler(self):
        return exception_handler

    def initial(self, request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        key = kwargs.get("key")
        if key is not None and "\x00" in key:
            raise BadRequest("a key cannot contain a NUL character")

    def http_method_not_allowed(self, request, *args: Any, **kwargs: Any) -> Response:
        """``PUT .../incr/`` is not the action's: it is ``PUT`` of the key "<key>/incr"."""
        handler = _KEY_METHODS.get(request.method.lower())
        suffix = self._action_url_path()
        if handler is None or suffix is None:
            return super().http_method_not_allowed(request, *args, **kwargs)
        self.action = handler
        self.kwargs["key"] = f"{kwargs['key']}/{suffix}"
        return getattr(self, handler)(request, key=self.kwargs["key"])

    def _action_url_path(self) -> str | None:
        for name in self.action_map.values():
            url_path = getattr(getattr(type(self), name, None), "url_path", None)
            if url_path is not None:
                return url_path
        return None

    # -- the key -----------------------------------------------------------------------------

    def list(self, request) -> Response:
        """A page of ``scan``: it reads at most ``SCAN_ROWS`` rows and ``limit`` + 1 matches,
        however many keys the table holds."""
        query = _valid(s.KeyQuerySerializer, request.query_params)
        store = _store()
        with store.statements().time_limit(kv_settings.KEYS_TIMEOUT, query["pattern"]):
            cursor, keys = store.scan(query["cursor"], query["pattern"], SCAN_ROWS, limit=query["limit"])
        return Response({"keys": keys, "truncated": cursor != 0, "next": cursor or None})

    def retrieve(self, request, key: str) -> Response:
        found = _store().inspect(key)  # type, value and TTL in one read (of L1 on a hit)
        if found is None or found[0] not in ("value", "hash"):
            # missing, or an entry of the cache backend, which is not the API's to show
            raise KeyNotFound(f"key {key!r} does not exist")
        type_, value, pttl = found
        ttl = pttl if pttl < 0 else (pttl + 500) // 1000  # rounded, as KVStore.ttl()
        return Response({"key": key, "value": value, "type": type_, "ttl": ttl})

    def update(self, request, key: str) -> Response:
        body = _valid(s.SetValueSerializer, request.data)
        value = checked_value(key, body["value"])
        ttl = body.get("ttl")
        _store().set(key, value, ex=ttl)
        return Response({"key": key, "value": value, "type": "value", "ttl": -1 if ttl is None else ttl})

    def destroy(self, request, key: str) -> Response:
        if not _store().delete(key):
            raise KeyNotFound(f"key {key!r} does not exist")
        return Response(status=status.HTTP_204_NO_CONTENT)

    # -- actions -----------------------------------------------------------------------------

    @extend_schema(summary="Increment a counter", parameters=[KEY_PARAMETER], request=s.IncrSerializer,
                   responses={200: s.CounterSerializer, **error_responses(400, 403, 409)})
    @action(detail=True, methods=["post"])
    def incr(self, request, key: str) -> Response:
        """Add ``amount`` to an integer value (a missing key counts as 0); the TTL is kept."""
        body = _valid(s.IncrSerializer, request.data)
        return Response({"key": key, "value": _store().incrby(key, body["amount"])})

    @extend_schema(summary="Set or clear a key's expiry", parameters=[KEY_PARAMETER],
                   request=s.ExpireSerializer, responses={200: s.ExpirySerializer, **error_responses(400, 403, 404)})
    @action(detail=True, methods=["post"])
    def expire(self, request, key: str) -> Response:
        """Expire the key ``ttl`` seconds from now; 0 or less deletes it."""
        ttl = _valid(s.ExpireSerializer, request.data)["ttl"]
        if not _store().expire(key, ttl):
            raise KeyNotFound(f"key {key!r} does not exist")
        return Response({"key": key, "ttl": ttl if ttl > 0 else -2})

    @extend_schema(summary="Read a hash", parameters=[KEY_PARAMETER],
                   responses={200: s.HashSerializer, **error_responses(400, 403, 404, 409)})
    @action(detail=True, methods=["get"], url_path="hash", url_name="hash")
    def hash_fields(self, request, key: str) -> Response:
        """Every field of the hash."""
        fields = _store().hgetall(key)
        if not fields:  # a hash loses its key with its last field: an empty one does not exist
            raise KeyNotFound(f"key {key!r} does not exist")
        return Response({"key": key, "fields": fields})

    @extend_schema(summary="Set fields of a hash", parameters=[KEY_PARAMETER], request=s.HashUpdateSerializer,
                   responses={200: s.HashUpdatedSerializer, **error_responses(400, 403, 409, 413)})
    @hash_fields.mapping.patch
    def hash_update(self, request, key: str) -> Response:
        """Set the given fields (creating the hash when missing); the other fields are kept."""
        fields = checked_value(key, _valid(s.HashUpdateSerializer, request.data)["fields"])
        store = _store()
        added = store.hset(key, mapping=fields)
        return Response({"key": key, "fields": store.hgetall(key), "added": added})
