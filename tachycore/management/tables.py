"""Plain-text tables and JSON for the kernel's commands."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    """Left-aligned columns, two spaces apart; the first row is the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)
