"""NUL characters in JSON: PostgreSQL's ``text`` and ``jsonb`` cannot hold one, so kv and
jobs refuse them on every database alike, with these two tests."""

from __future__ import annotations

import re
from typing import Any

#: ``\u0000`` in JSON text after an even number of backslashes (an odd one escapes the "\")
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def text_holds_nul(json_text: str) -> bool:
    """Whether JSON text holds a NUL character, raw or escaped, in any string or key."""
    return "\x00" in json_text or ("\\u0000" in json_text and _ESCAPED_NUL.search(json_text) is not None)


def holds_nul(value: Any) -> bool:
    """Whether a NUL character is in any string or key of a parsed JSON value."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
