"""Argument validators shared by kv's management commands.

They take the raw string and raise ``CommandError`` (exit status 1, one line),
not argparse errors, so that every bad value a user types is reported alike.
``None`` (the option was not given) stays ``None``.
"""

from __future__ import annotations

from django.core.management.base import CommandError

from tachycore.conf import parse_duration


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
