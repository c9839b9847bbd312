"""Argument parsers shared by the kernel's management commands."""

from __future__ import annotations

import argparse
import json
from typing import Any


def json_object(value: str) -> dict[str, Any]:
    """An argparse type: a JSON object given on the command line."""
    try:
        data = json.loads(value)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object, got {value}")
    return data
