"""Validation of the store's arguments: keys, hash fields, values, durations, integers.

Every check raises an error of ``kv.errors`` naming what is wrong; nothing is written.
"""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from tachycore.jsontext import depth_fault, json_fault, string_fault

from .conf import kv_settings
from .errors import InvalidKey, InvalidValue, Overflow, ValueTooLarge
from .sql.base import INT64_MAX, INT64_MIN

MAX_KEY_LENGTH = 512
#: the longest TTL the store, the HTTP API and the admin take, in seconds (about 317 years):
#: an expiry time in epoch milliseconds then always fits the signed 64-bit column
MAX_TTL = 10**10
#: ``json.dumps`` with these arguments builds a new encoder per call; one serves every call
_to_json_text = json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode


def to_seconds(value: Any, what: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise InvalidValue(f"{what} must be a number of seconds, got {value!r}")
    return float(value)


def to_integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValue(f"{what} must be an integer, got {value!r}")
    if not INT64_MIN <= value <= INT64_MAX:
        raise Overflow(f"{what} {value} is outside the signed 64-bit range")
    return value


def _storable(text: str, error: type[Exception], what: str) -> str:
    """``text``, a plain string (not JSON), if both databases can store it: no NUL character,
    no lone surrogate. The six characters ``\\u0000`` are no NUL in a key."""
    fault = string_fault(text)
    if fault is not None:
        raise error(f"{what} {fault}")
    return text


def check_key(key: Any) -> str:
    """``key`` if it is a non-empty string of at most 512 storable characters."""
    # the common key first (hot path): ASCII, so no surrogate, and no NUL character
    if key.__class__ is str and 0 < len(key) <= MAX_KEY_LENGTH and key.isascii() and "\x00" not in key:
        return key
    if not isinstance(key, str):
        raise InvalidKey(f"a key must be a string, got {type(key).__name__} {key!r}")
    if not key:
        raise InvalidKey("a key cannot be empty")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKey(f"key {key[:40]!r}... is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}")
    return _storable(key, InvalidKey, "key")

def check_field(field: Any) -> str:
    """``field`` if it is a storable string (a hash field may be empty)."""
    if not isinstance(field, str):
        raise InvalidKey(f"a hash field must be a string, got {type(field).__name__} {field!r}")
    return _storable(field, InvalidKey, f"hash field {field!r}")

def to_json(value: Any, key: str) -> str:
    """The JSON text of ``value``, if it is JSON, storable (no NUL character, no lone surrogate,
    at most ``MAX_JSON_DEPTH`` levels deep) and within ``KV["MAX_VALUE_SIZE"]``."""
    try:
        text = _to_json_text(value)
    except (TypeError, ValueError) as e:
        raise InvalidValue(f"value for key {key!r} is not JSON-serialisable: {e}") from None
    except RecursionError:  # some hundred levels deep: far over the limit
        raise InvalidValue(f"value for key {key!r} {depth_fault()}") from None
    size = len(text) if text.isascii() else len(text.encode(errors="surrogatepass"))
    if size > kv_settings.MAX_VALUE_SIZE:
        raise ValueTooLarge(
            f"value for key {key!r} is {size} bytes as JSON; KV['MAX_VALUE_SIZE'] is {kv_settings.MAX_VALUE_SIZE}"
        )
    fault = json_fault(value, text)  # after the size, which bounds its work
    if fault is not None:
        raise InvalidValue(f"value for key {key!r} {fault}")
    return text


def expire_at(now: int, milliseconds: float) -> int:
    """The epoch ms a TTL of ``milliseconds`` ends at; ``InvalidValue`` past ``MAX_TTL``."""
    if milliseconds > MAX_TTL * 1000:
        raise InvalidValue(f"a TTL is at most {MAX_TTL} seconds, got {milliseconds / 1000:g} seconds")
    return now + max(1, round(milliseconds))


def expiry(ex: Any, px: Any, now: int) -> int | None:
    """``expire_at`` (epoch ms) for redis-py's ``ex``/``px`` arguments, ``None`` without them."""
    if ex is not None and px is not None:
        raise InvalidValue("give ex or px, not both")
    if ex is not None:
        seconds = to_seconds(ex, "ex")
    elif px is not None:
        seconds = to_seconds(px, "px") / 1000 if not isinstance(px, timedelta) else px.total_seconds()
    else:
        return None
    if seconds <= 0:
        raise InvalidValue(f"an expiry must be positive, got {ex if ex is not None else px!r}")
    return expire_at(now, seconds * 1000)
