"""JSON values the stores must refuse or take: deep nesting, lone surrogates."""

from __future__ import annotations


def nested_list(depth: int) -> list:
    """Lists nested ``depth`` levels deep around 1 (``[[1]]`` is 2)."""
    value: list | int = 1
    for _ in range(depth):
        value = [value]
    return value  # type: ignore[return-value]


#: a lone surrogate (half of a UTF-16 pair) in each place a value can hold one; the last is a
#: whole pair, one character, which is fine
SURROGATES = {"value": "a\ud800b", "in-a-list": ["ok", "\udc00"], "object-key": {"\ud800": 1},
              "nested-key": {"a": [{"\udfff": None}]}, "two-halves": "\ud83d\ude00"}
