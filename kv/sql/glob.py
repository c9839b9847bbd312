"""Redis glob patterns, translated for each database.

Redis matches ``*`` (any run), ``?`` (one character), ``[abc]``, ``[^a]``, ``[a-z]``
and takes a backslash as "the next character literally". Everything else,
including ``%`` and ``_``, is literal.

A pattern is refused past two limits (``check_pattern``). PostgreSQL matches a pattern with
a regular expression whose cost per key grows with the pattern's length and its wildcards,
and with the length of the key: over 100,000 keys of 512 characters, 1,000 ``?`` ran past
30 s, and 128 ``?`` after a ``*`` took 4 s. Within the limits the worst pattern measured
answers in under a second over 100,000 keys of up to 70 characters, through the HTTP API
and the admin (docs/BENCHMARKS.md); ``KV["KEYS_TIMEOUT"]`` bounds the rest. Before the
pattern itself, ``key_bounds`` and ``length_bounds`` narrow the keys it is tried on: the
literal prefix is a key range the primary key index answers, and the pattern's length
bounds the key's.
"""

from __future__ import annotations

import re

from ..errors import InvalidPattern

#: the longest pattern, in characters (a key may have 512: a pattern is a prefix and a few
#: wildcards; ``exists()`` and ``get()`` find a key by its whole name)
MAX_PATTERN_LENGTH = 256
#: the most wildcards in a pattern: ``*``, ``?`` and ``[...]`` sets, each one counted
MAX_PATTERN_WILDCARDS = 16


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


def check_pattern(pattern: object) -> str:
    """``pattern`` when it is a string within ``MAX_PATTERN_LENGTH`` and
    ``MAX_PATTERN_WILDCARDS``; ``kv.errors.InvalidPattern`` naming the limit otherwise."""
    if not isinstance(pattern, str):
        raise InvalidPattern(f"a pattern must be a string, got {pattern!r}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(
            f"a pattern is at most {MAX_PATTERN_LENGTH} characters (kv.sql.glob.MAX_PATTERN_LENGTH); "
            f"this one has {len(pattern)}"
        )
    wildcards = sum(1 for kind, _ in _tokens(pattern) if kind != "lit")
    if wildcards > MAX_PATTERN_WILDCARDS:
        raise InvalidPattern(
            f"a pattern has at most {MAX_PATTERN_WILDCARDS} wildcards (*, ? and [...] sets; "
            f"kv.sql.glob.MAX_PATTERN_WILDCARDS); this one has {wildcards}"
        )
    return pattern


def literal_prefix(pattern: str) -> str:
    prefix = []
    for kind, value in _tokens(pattern):
        if kind != "lit":
            break
        prefix.append(value)
    return "".join(prefix)


def key_bounds(pattern: str) -> tuple[str, str] | None:
    """``(lo, hi)``: every key the pattern matches is in ``lo <= key < hi`` (code point
    order); ``None`` when the pattern starts with a wildcard."""
    prefix = literal_prefix(pattern).rstrip(chr(0x10FFFF))  # nothing sorts after it: drop it
    if not prefix:
        return None
    following = ord(prefix[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # no key holds a surrogate, and no driver sends one
        following = 0xE000
    return literal_prefix(pattern), prefix[:-1] + chr(following)


def length_bounds(pattern: str) -> tuple[int, bool]:
    """``(length, exact)``: the keys the pattern matches have exactly ``length`` characters,
    or at least that many when it holds a ``*`` (``exact`` is false)."""
    length, exact = 0, True
    for kind, _ in _tokens(pattern):
        if kind == "any":
            exact = False
        else:
            length += 1
    return length, exact


def glob_to_regex(pattern: str) -> str:
    """A PostgreSQL regular expression matching exactly what Redis matches."""
    parts = ["^"]
    for kind, value in _tokens(pattern):
        if kind == "lit":
            parts.append(re.escape(value) if not value.isalnum() else value)
        elif kind == "any":
            if parts[-1] != ".*":  # "**" is "*": a state less for the regular expression
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
