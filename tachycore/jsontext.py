"""What JSON kv and jobs can store alike on SQLite and PostgreSQL, and how deep it may nest.

PostgreSQL's ``text`` and ``jsonb`` cannot hold a NUL character; neither database takes a
lone surrogate (half of a UTF-16 pair, ``"\\ud800"``), which is no Unicode character and
cannot be written as UTF-8; and JSON nested some hundreds of levels deep breaks Python's
recursive encoders, parsers and pretty printers (the admin's among them). kv, jobs and the
HTTP APIs refuse all three with these checks, on every database alike, before anything is
written.
"""

from __future__ import annotations

import re
from itertools import accumulate, repeat
from typing import Any

#: the deepest nesting of arrays and objects a stored value (a kv value, a hash's object of
#: fields, a job payload) may have: ``[]`` is 1 level, ``{"a": [1]}`` 2, a scalar 0
MAX_JSON_DEPTH = 100

#: ``\u0000`` in JSON text after an even number of backslashes (an odd one escapes the "\")
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
#: a JSON string, or an unterminated one up to the end of the text; possessive, and matching
#: wherever a string starts, so the text is read once (no retry from each later quote)
_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
#: bytes.translate() arguments that keep a text's quotes and brackets, all made square
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_A_MARK = bytes(byte for byte in range(256) if byte not in b'"[]{}')
_STEP = {ord("["): 1, ord("]"): -1}
#: how many levels text_too_deep peels off before it sums what is left
_PEELS = 8
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")

NUL_FAULT = "contains a NUL character (\\u0000), which PostgreSQL cannot store"
SURROGATE_FAULT = "contains a lone surrogate (half of a UTF-16 pair, such as \\ud800), which is not valid Unicode"


def depth_fault(limit: int = MAX_JSON_DEPTH) -> str:
    """The words of a refusal for JSON nested deeper than ``limit``."""
    return f"is nested too deeply: more than {limit} levels of arrays and objects"


def text_holds_nul(json_text: str) -> bool:
    """Whether JSON text holds a NUL character, raw or escaped, in any string or key.

    Only for JSON text: in a plain string (a key, a topic) the six characters ``\\u0000``
    are no NUL, and ``"\\x00" in string`` is the test.
    """
    return "\x00" in json_text or ("\\u0000" in json_text and _ESCAPED_NUL.search(json_text) is not None)


def _strings(value: Any):
    """Every string and object key in a parsed JSON value, walked without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)


def holds_nul(value: Any) -> bool:
    """Whether a NUL character is in any string or key of a parsed JSON value."""
    return any("\x00" in text for text in _strings(value))


def holds_lone_surrogate(value: Any) -> bool:
    """Whether any string or key of a parsed JSON value holds a surrogate code point.

    A str such as ``"\\ud83d\\ude00"`` (a pair written as two code points) counts too: it is
    no text either, and PostgreSQL would read it back as one other character.
    """
    return any(not text.isascii() and _SURROGATE.search(text) is not None for text in _strings(value))


def _brackets(json_text: str) -> bytes:
    """The brackets of JSON text outside its strings, all made square (``b"[[]]"``).

    Two C passes for the common text: keep the quotes and brackets alone, then drop each
    ``""``, the trace of a string with no bracket in it. No quote left means no string held
    one; else (or with an escaped quote in the text) the strings are cut out one by one.
    """
    if '\\"' not in json_text:
        marks = json_text.encode(errors="surrogatepass").translate(_SQUARE, _NOT_A_MARK)
        marks = marks.replace(b'""', b"")
        if b'"' not in marks:
            return marks
    return _STRING.sub("", json_text).encode(errors="surrogatepass").translate(_SQUARE, _NOT_A_MARK)


def json_holds_lone_surrogate(value: Any, json_text: str) -> bool:
    """``holds_lone_surrogate(value)`` for a value parsed from, or written as, ``json_text``:
    the text answers at C speed unless it holds an escape that may be one.

    A surrogate is in the text raw (``json.dumps`` without ``ensure_ascii``) or as an escape
    ``\\uD800``-``\\uDFFF`` (with it, or from a client); an escape may also be half of a
    valid pair, or a backslash written out before "ud8..", which only the strings tell.
    """
    if not json_text.isascii() and _SURROGATE.search(json_text) is not None:
        return True
    return _SURROGATE_ESCAPE.search(json_text) is not None and holds_lone_surrogate(value)


def text_too_deep(json_text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text nests arrays and objects deeper than ``limit``.

    Measured without recursion, so any depth is safe to ask about, and in passes at C speed
    over the text: the common text, with no more opening brackets than ``limit``, by
    counting them; else on its brackets alone (strings taken out): a run of more than
    ``limit`` openings (the usual deep text) answers at once, a few passes that each drop
    the innermost pairs (one level off every branch) empty a shallow text, and what they
    leave is summed bracket by bracket. Made for valid JSON (from ``json.dumps``, or parsed
    already): anything else gets an answer, not an error.
    """
    if json_text.count("[") + json_text.count("{") <= limit:
        return False
    brackets = _brackets(json_text)
    if b"[" * (limit + 1) in brackets:
        return True
    for peeled in range(_PEELS):
        if not brackets:
            return peeled > limit
        brackets = brackets.replace(b"[]", b"")
    return _PEELS + max(accumulate(map(_STEP.get, brackets, repeat(0))), default=0) > limit


def json_fault(value: Any, json_text: str) -> str | None:
    """Why a JSON value cannot be stored, in words that follow its name ("payload of 'x' ..."),
    or ``None`` when it can.

    ``json_text`` is the value's text from ``json.dumps``, with either ``ensure_ascii``: the
    checks read the text, and walk ``value`` only when the text holds an escaped surrogate.
    """
    if text_too_deep(json_text):
        return depth_fault()
    if text_holds_nul(json_text):
        return NUL_FAULT
    if json_holds_lone_surrogate(value, json_text):
        return SURROGATE_FAULT
    return None


def string_fault(text: str) -> str | None:
    """Why a plain string (a key, a field name, a topic) cannot be stored, or ``None``.

    It is not JSON text: ``\\u0000`` written out is six ordinary characters.
    """
    if "\x00" in text:
        return NUL_FAULT
    if not text.isascii() and _SURROGATE.search(text) is not None:
        return SURROGATE_FAULT
    return None
