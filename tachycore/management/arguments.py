"""Argument validators shared by the management commands of the bundle (tachycore, kv, jobs).

They raise ``CommandError`` (exit status 1 with a one-line message), not
argparse errors, so that every bad value a user types is reported alike.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError

from tachycore.conf import parse_duration
from tachycore.errors import InvalidPluginName
from tachycore.registry.validation import MAX_OPTIONS_DEPTH, check_name, describe, nesting_depth


def json_object(value: str | None, what: str, max_depth: int = MAX_OPTIONS_DEPTH) -> dict[str, Any] | None:
    """Parse ``value`` as a JSON object nesting at most ``max_depth`` levels (``{"a": {}}`` is 2);
    ``None`` stays ``None``. NaN and Infinity are refused: they are no JSON."""
    if value is None:
        return None
    try:
        data = json.loads(value, parse_constant=_refuse_constant)
    except RecursionError:  # the parser's own limit, far above max_depth: say the same
        raise CommandError(f"{what} nests more than {max_depth} levels deep") from None
    except ValueError as e:
        raise CommandError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CommandError(f"{what} must be a JSON object, got {describe(data)}")
    if nesting_depth(data) > max_depth:
        raise CommandError(f"{what} nests more than {max_depth} levels deep")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def plugin_names(*names: str) -> None:
    """Refuse a name no plugin can have (``bad/name``) before anything reads the registry."""
    for name in names:
        try:
            check_name(name)
        except InvalidPluginName as e:
            raise CommandError(str(e)) from None


def positive_duration(value: str | None, option: str) -> float | None:
    """Seconds from ``"30"``, ``"500ms"``, ``"5s"``, ``"2m"``, ``"1h"``; more than 0."""
    if value is None:
        return None
    if value.strip().startswith("-"):
        raise CommandError(f"{option} cannot be negative, got {value!r}")
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise CommandError(f"{option}: {e}") from None
    if seconds <= 0:
        raise CommandError(f"{option} must be more than 0, got {value!r}")
    return seconds


def positive_integer(value: str | None, option: str) -> int | None:
    """A whole number of at least 1."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{option} must be a whole number, got {value!r}") from None
    if number < 1:
        raise CommandError(f"{option} must be at least 1, got {value!r}")
    return number


def name_the_actions(actions: Any) -> None:
    """Call after adding every action to ``parser.add_subparsers(...)``: a command run
    without one then says which there are (``required: {on,off,status}``)."""
    actions.metavar = "{" + ",".join(actions.choices) + "}"
