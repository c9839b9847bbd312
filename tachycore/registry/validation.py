"""What a registry record may hold: one rule for plugin names, and the type of every field.

Every driver checks what it is asked to write, and every record it reads back
from a store someone may have edited by hand (a JSON file, a row inserted with
SQL): a name with a ``/`` breaks the admin's URLs, and ``"enabled": "no"``
must not read as enabled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tachycore.errors import InvalidPluginName, InvalidRecord

#: a plugin name: an app label or the ``name`` given in plugin.py; it is also a URL segment
#: (``/api/<name>/``, the admin's pages), hence no "/" and no leading "." (".." would climb)
PLUGIN_NAME = re.compile(r"\w[\w.-]{0,99}")
NAME_RULE = "1 to 100 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'"

#: how deeply a plugin's options may nest (``{"a": {"b": 1}}`` is 2): deeper JSON breaks
#: copying and printing long before it means anything
MAX_OPTIONS_DEPTH = 100

#: the fields of a record and what each holds (``name`` has its own rule)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "package_name": (str,),
    "version": (str,),
    "enabled": (bool,),
    "installed": (bool,),
    "built_in": (bool,),
    "options": (dict,),
    "last_error": (str,),
    "generation": (int,),
    "created": (datetime, type(None)),
    "updated": (datetime, type(None)),
}
_TYPE_WORDS = {str: "a string", bool: "true or false", int: "a whole number from 0", dict: "a JSON object", datetime: "a date and time",
               type(None): "null"}
#: characters no database column can keep: NUL (PostgreSQL) and lone surrogates (UTF-8)
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def describe(value: Any) -> str:
    """A short, safe description of a value for an error message (never a deep ``repr``)."""
    if isinstance(value, dict | list | tuple):
        return f"a {type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_valid_name(name: object) -> bool:
    """Whether ``name`` follows the plugin name rule."""
    return isinstance(name, str) and PLUGIN_NAME.fullmatch(name) is not None


def check_name(name: object) -> str:
    """Return ``name``, or raise :class:`InvalidPluginName`."""
    if not isinstance(name, str) or not is_valid_name(name):
        raise InvalidPluginName(name, NAME_RULE, describe(name))
    return name


def nesting_depth(value: Any) -> int:
    """How deeply JSON containers nest in ``value`` (a scalar is 0, ``{}`` is 1), without
    recursion, so that the deepest value is measured, not a ``RecursionError``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def unstorable(value: Any) -> bool:
    """Whether a string or key of ``value`` holds NUL or a lone surrogate, or a number is NaN or
    infinite: JSON a database column (PostgreSQL's ``jsonb``) cannot keep."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


def check_options(name: str, options: Any) -> None:
    """Options are a JSON object of at most ``MAX_OPTIONS_DEPTH`` levels that a database can keep."""
    if not isinstance(options, dict):
        raise InvalidRecord(f"options of plugin {name!r} must be a JSON object, got {describe(options)}")
    if nesting_depth(options) > MAX_OPTIONS_DEPTH:
        raise InvalidRecord(f"options of plugin {name!r} nest more than {MAX_OPTIONS_DEPTH} levels deep")
    if unstorable(options):
        raise InvalidRecord(f"options of plugin {name!r} hold what a database cannot store: a NUL "
                            "character, a lone surrogate (\\u0000, \\ud800-\\udfff), NaN or Infinity")


def check_fields(name: str, fields: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidRecord` naming the first field of ``fields`` that holds the wrong type."""
    for field, value in fields.items():
        kinds = FIELD_TYPES.get(field)
        if kinds is None:
            raise InvalidRecord(f"plugin {name!r} has no field {field!r}")
        # bool is an int subclass and int is no bool: compare exactly for booleans
        if kinds == (bool,):
            ok = type(value) is bool
        elif kinds == (int,):
            ok = type(value) is int and value >= 0
        else:
            ok = isinstance(value, kinds)
        if not ok:
            wanted = " or ".join(_TYPE_WORDS[kind] for kind in kinds)
            raise InvalidRecord(f"field {field!r} of plugin {name!r} must be {wanted}, got {describe(value)}")
        if field == "options":
            check_options(name, value)


def fields_from_json(item: Any) -> dict[str, Any]:
    """The fields of one record of a JSON registry file, checked, dates parsed.

    Raises :class:`InvalidRecord` (or :class:`InvalidPluginName`) naming the field at fault;
    fields left out take their defaults, fields the registry does not know are refused (a
    typo such as ``"enable"`` would otherwise be dropped without a word).
    """
    if not isinstance(item, dict):
        raise InvalidRecord(f"a record must be a JSON object, got {describe(item)}")
    if "name" not in item:
        raise InvalidRecord("a record has no 'name'")
    name = check_name(item["name"])
    fields = {key: value for key, value in item.items() if key != "name"}
    for key in ("created", "updated"):
        fields[key] = _datetime(name, key, fields.get(key))
    check_fields(name, fields)
    return {"name": name, **fields}


def _datetime(name: str, field: str, value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidRecord(f"field {field!r} of plugin {name!r} must be an ISO 8601 date and time or null, "
                        f"got {describe(value)}")
