"""Redis glob patterns, translated for each database.

Redis matches ``*`` (any run), ``?`` (one character), ``[abc]``, ``[^a]``, ``[a-z]``
and takes a backslash as "the next character literally". Everything else,
including ``%`` and ``_``, is literal.
"""

from __future__ import annotations

import re


def _tokens(pattern: str):
    """Yield ``("lit", ch)``, ``("any", None)``, ``("one", None)`` or ``("set", (negated, items))``."""
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\" and i + 1 < n:
            yield "lit", pattern[i + 1]
            i += 2
        elif ch == "*":
            yield "any", None
            i += 1
        elif ch == "?":
            yield "one", None
            i += 1
        elif ch == "[":
            j = i + 1
            negated = j < n and pattern[j] == "^"
            if negated:
                j += 1
            items: list[tuple[str, str]] = []
            while j < n and pattern[j] != "]":
                if pattern[j] == "\\" and j + 1 < n:
                    items.append((pattern[j + 1], pattern[j + 1]))
                    j += 2
                elif j + 2 < n and pattern[j + 1] == "-":  # as Redis: even "a-]" is a range
                    low, high = pattern[j], pattern[j + 2]
                    items.append((min(low, high), max(low, high)))  # Redis accepts [z-a] too
                    j += 3
                else:
                    items.append((pattern[j], pattern[j]))
                    j += 1
            # an unclosed "[" runs to the end of the pattern, as in Redis
            yield "set", (negated, items)
            i = j + 1
        else:
            yield "lit", ch
            i += 1


def literal_prefix(pattern: str) -> str:
    prefix = []
    for kind, value in _tokens(pattern):
        if kind != "lit":
            break
        prefix.append(value)
    return "".join(prefix)


def glob_to_regex(pattern: str) -> str:
    """A PostgreSQL regular expression matching exactly what Redis matches."""
    parts = ["^"]
    for kind, value in _tokens(pattern):
        if kind == "lit":
            parts.append(re.escape(value) if not value.isalnum() else value)
        elif kind == "any":
            parts.append(".*")
        elif kind == "one":
            parts.append(".")
        else:
            negated, items = value
            inner = "".join(
                _class_char(low) if low == high else f"{_class_char(low)}-{_class_char(high)}" for low, high in items
            )
            parts.append(f"[{'^' if negated else ''}{inner}]" if inner else ("." if negated else "[^\\s\\S]"))
    parts.append("$")
    return "".join(parts)


def _class_char(ch: str) -> str:
    return "\\" + ch if ch in "\\]^-[" else ch


def glob_to_sqlite(pattern: str) -> str | None:
    """An SQLite ``GLOB`` pattern matching exactly what Redis matches; ``None`` when the
    pattern can match nothing (an empty set, which GLOB cannot say).

    SQLite's GLOB knows ``*``, ``?``, ``[...]`` and ``[^...]`` but no escapes: a
    literal special character is written as a one-character set.
    """
    parts = []
    for kind, value in _tokens(pattern):
        if kind == "lit":
            parts.append(f"[{value}]" if value in "*?[" else value)
        elif kind == "any":
            parts.append("*")
        elif kind == "one":
            parts.append("?")
        else:
            negated, items = value
            if not items:
                if not negated:
                    return None
                parts.append("?")  # [^] : any one character
                continue
            parts.append(_sqlite_set(negated, items))
    return "".join(parts)


def _sqlite_set(negated: bool, items: list[tuple[str, str]]) -> str:
    # in a GLOB set "]" must come first, "-" last, and "^" anywhere but first; a range that
    # starts or ends at "]" is written as "]" plus the rest of the range
    singles: set[str] = set()
    ranges = []
    for low, high in items:
        if low != high and "]" in (low, high):
            singles.add("]")
            low, high = (chr(ord(low) + 1), high) if low == "]" else (low, chr(ord(high) - 1))
        if low == high:
            singles.add(low)
        elif low < high:
            ranges.append(f"{low}-{high}")
    if not negated and not ranges and len(singles) == 1:
        (char,) = singles
        return f"[{char}]" if char in "*?[" else char
    body = "".join(sorted(singles - {"]", "-", "^"})) + "".join(ranges)
    body = ("]" if "]" in singles else "") + body + ("^" if "^" in singles else "")
    if body.startswith("^"):
        body = body[1:] + "^"  # only possible when "^" is the sole character: "[^^]" reads right
    body += "-" if "-" in singles else ""
    return f"[{'^' if negated else ''}{body}]"
