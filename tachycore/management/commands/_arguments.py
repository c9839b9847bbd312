"""Argument validators shared by the kernel's management commands.

They raise ``CommandError`` (exit status 1 with a one-line message), not
argparse errors, so that every bad value a user types is reported alike.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError


def json_object(value: str | None, what: str) -> dict[str, Any] | None:
    """Parse ``value`` as a JSON object; ``None`` stays ``None``."""
    if value is None:
        return None
    try:
        data = json.loads(value)
    except json.JSONDecodeError as e:
        raise CommandError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise CommandError(f"{what} must be a JSON object, got {value}")
    return data
