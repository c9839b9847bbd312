"""The key browser's forms: a key's JSON value, type and TTL, checked as the store checks
them, and written through the store (``save_key``) in one transaction."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.db import transaction

import kv
from kv.errors import KVError
from kv.models import KVEntry, ValueType
from kv.validation import MAX_TTL, check_field, check_key, to_json
from tachycore.jsontext import depth_fault


def pretty(value: Any) -> str:
    """A JSON value indented for reading (and editing); on one line when it nests too deeply
    for the indenting encoder (a value stored before the store capped the depth)."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:
        return json.dumps(value, ensure_ascii=False)

class KeyExists(KVError):
    """A key added from the admin exists already."""


def _canonical(value: Any) -> str:
    # 1, 1.0 and true are equal in Python, not in JSON: compare texts
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def parse_json(text: str) -> Any:
    """The value of ``text``; a ``ValidationError`` quoting the parser (line and column) if it
    is no JSON, or nests too deeply for Python's parser (the store then checks the depth)."""

    def refuse_constant(name: str) -> Any:
        raise forms.ValidationError(f"Invalid JSON: {name} is not a JSON value.", code="invalid_json")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as e:
        raise forms.ValidationError(f"Invalid JSON: {e}", code="invalid_json") from None
    except RecursionError:  # some hundred levels deep: Python's parser gives up
        raise forms.ValidationError(f"The value {depth_fault()}.", code="too_deep") from None


# -- forms -------------------------------------------------------------------------------------


class KeyForm(forms.ModelForm):
    """The value as JSON text and the TTL of a key; it never saves the row itself."""

    json_value = forms.CharField(
        label="Value (JSON)",
        widget=forms.Textarea(attrs={"rows": 16, "cols": 90, "class": "vLargeTextField kv-json",
                                     "spellcheck": "false"}),
        help_text="Any JSON value; a hash takes a JSON object of fields.",
    )
    ttl = forms.IntegerField(label="Set TTL", min_value=1, max_value=MAX_TTL, required=False,
                             help_text="Seconds from now. Leave empty to keep the current expiry.")
    remove_ttl = forms.BooleanField(label="Remove the TTL (persist)", required=False,
                                    help_text="The key no longer expires.")

    class Meta:
        model = KVEntry
        fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["json_value"].initial = pretty(self.instance.value)

    @property
    def key(self) -> str:
        return self.instance.key

    @property
    def value_type(self) -> str:
        return self.instance.type

    def clean_json_value(self) -> Any:
        value = parse_json(self.cleaned_data["json_value"])
        try:
            if self.value_type == ValueType.HASH:
                if not isinstance(value, dict) or not value:
                    raise forms.ValidationError(
                        "A hash takes a JSON object with at least one field (delete the key to empty it).",
                        code="not_a_hash")
                for field in value:
                    check_field(field)
            to_json(value, self.key)  # the store's own checks: size, NUL characters
        except KVError as e:
            raise forms.ValidationError(str(e), code="invalid_value") from None
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()  # a ModelForm's returns its cleaned_data
        cleaned = self.cleaned_data
        if cleaned.get("ttl") and cleaned.get("remove_ttl"):
            raise forms.ValidationError("Set a TTL or remove it, not both.", code="ttl_conflict")
        return cleaned

    def value_changed(self) -> bool:
        return _canonical(self.cleaned_data["json_value"]) != _canonical(self.instance.value)


class AddKeyForm(KeyForm):
    """A new key: its name, type, JSON value and an optional TTL."""

    new_key = forms.CharField(label="Key", max_length=512, strip=False,
                              widget=forms.TextInput(attrs={"class": "vTextField"}))
    new_type = forms.ChoiceField(label="Type", choices=[(ValueType.VALUE, "value"), (ValueType.HASH, "hash")],
                                 initial=ValueType.VALUE)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields.pop("remove_ttl")
        self.fields["ttl"].label = "TTL"
        self.fields["ttl"].help_text = "Seconds. Leave empty for a key that never expires."
        # the key and type are cleaned before the value, which is checked against them
        self.order_fields(["new_key", "new_type", "json_value", "ttl"])

    @property
    def key(self) -> str:
        return self.cleaned_data.get("new_key") or ""

    @property
    def value_type(self) -> str:
        return self.cleaned_data.get("new_type") or ValueType.VALUE

    def clean_new_key(self) -> str:
        try:
            key = check_key(self.cleaned_data["new_key"])
        except KVError as e:
            raise forms.ValidationError(str(e), code="invalid_key") from None
        store = kv.get_store()
        if store is not None and store.exists(key):
            raise forms.ValidationError(f"Key {key!r} exists already; open it to edit it.", code="exists")
        return key


# -- writes ------------------------------------------------------------------------------------


def replace_hash(store: Any, key: str, fields: dict[str, Any], *, keep_ttl: bool) -> None:
    """Make ``key`` the hash ``fields`` and nothing else, in one transaction."""
    with transaction.atomic(using=store.using):
        left = store.pttl(key) if keep_ttl else -1
        store.delete(key)
        store.hset(key, mapping=fields)
        if left > 0:
            store.pexpire(key, left)


def save_key(store: Any, form: KeyForm, *, adding: bool) -> str:
    """Write what ``form`` asks through the store, in one transaction; return the key."""
    key, value_type, data = form.key, form.value_type, form.cleaned_data
    value, ttl, remove_ttl = data["json_value"], data.get("ttl"), data.get("remove_ttl", False)
    with transaction.atomic(using=store.using):
        if adding:
            if store.exists(key):
                raise KeyExists(f"key {key!r} was created meanwhile; nothing was written")
        elif not form.value_changed():
            if ttl:
                store.expire(key, ttl)
            elif remove_ttl:
                store.persist(key)
            return key
        if value_type == ValueType.HASH:
            replace_hash(store, key, value, keep_ttl=not (ttl or remove_ttl))
            if ttl:
                store.expire(key, ttl)
        elif ttl:
            store.set(key, value, ex=ttl)
        else:
            store.set(key, value, keepttl=not remove_ttl)  # a plain set clears the TTL
    return key
