"""Why a write was refused: the statements of an increment return nothing when they refuse,
and the row, read right after in the same write, says why."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, NoReturn

from .errors import NotAnInteger, Overflow, WrongType
from .sql.base import INT64_MAX, INT64_MIN

if TYPE_CHECKING:
    from .sql import Statements


def refuse_increment(sql: Statements, key: str, field: str | None, amount: int, now: int) -> NoReturn:
    """Raise the error that explains why an increment of ``key`` (``field``) was refused."""
    found = sql.row(key, now)
    expected = "hash" if field is not None else "value"
    if found is None or found[0] != expected:
        raise WrongType(f"key {key!r} holds a {found[0] if found else 'none'}, not a {expected}")
    current = json.loads(found[1])
    if field is not None:
        current = current.get(field)
    where = f"field {field!r} of key {key!r}" if field is not None else f"key {key!r}"
    if isinstance(current, bool) or not isinstance(current, int) or not INT64_MIN <= current <= INT64_MAX:
        raise NotAnInteger(f"{where} holds {current!r}, not an integer")
    raise Overflow(f"adding {amount} to {where} ({current}) would leave the signed 64-bit range")
