"""Admin pages: the key browser of ``kv``.

The list shows live keys (expired rows count as absent, as in the store); the search
box takes a Redis glob pattern, matched in SQL exactly as ``store.keys(pattern)``
matches it. Every write goes through ``kv.get_store()`` (so L1 caches everywhere
drop the key), never through the ORM: an edit validates the JSON first and writes
nothing when it is refused.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db import NotSupportedError
from django.db.models import F, Lookup, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.html import format_html

import kv
from kv import clock as kv_clock
from kv.errors import KVError
from kv.models import KVEntry, ValueType
from kv.sql.glob import glob_to_regex, glob_to_sqlite
from kv.store import KVStore

from .key_forms import AddKeyForm, KeyForm, pretty, save_key
from .lookups import FilterLookupsOnly
from .switches import SwitchedAdmin

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler

    #: a lookup's SQL and its parameters (a tuple, as Django's own lookups return)
    CompiledSQL = tuple[str, tuple[str | int, ...]]

PREVIEW_LENGTH = 80


# -- glob search -------------------------------------------------------------------------------


class RedisGlob(Lookup):
    """``lhs`` matches a Redis glob pattern, translated as ``kv.sql`` translates it for
    ``store.keys()``: ``GLOB`` on SQLite, a regular expression on PostgreSQL; ``%`` and
    ``_`` are literal characters on both."""

    lookup_name = "redis_glob"
    prepare_rhs = False

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> CompiledSQL:
        lhs, params = self.process_lhs(compiler, connection)
        pattern = glob_to_sqlite(self.rhs)
        if pattern is None:  # an empty set: nothing can match
            return "1 = 0", ()
        return f"{lhs} GLOB %s", (*params, pattern)

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> CompiledSQL:
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} ~ %s", (*params, glob_to_regex(self.rhs))

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> CompiledSQL:
        raise NotSupportedError(f"Redis glob patterns are not translated for {connection.vendor}")


# -- display helpers ---------------------------------------------------------------------------


def ttl_seconds(entry: KVEntry) -> int | None:
    """Seconds left, rounded as ``store.ttl`` rounds them; ``None`` without expiry."""
    if entry.expire_at is None:
        return None
    return max(0, entry.expire_at - kv_clock.now_ms() + 500) // 1000


# -- the admin ---------------------------------------------------------------------------------


@admin.register(KVEntry)
class KeyAdmin(FilterLookupsOnly, SwitchedAdmin[KVStore]):
    """Browse, edit and delete keys; writes go through ``kv.get_store()``."""

    off_message = 'kv is disabled (KV["DISABLED"] or the environment variable KV_DISABLED)'

    form = KeyForm
    list_display = ("key", "type", "value_preview", "ttl_display")
    list_filter = ("type",)
    ordering = ("key",)
    search_fields = ("key",)
    search_help_text = ("A Redis glob pattern: * any characters, ? one, [a-z] a set, "
                        "\\ takes the next character literally (user:*, job:??, [a-c]*).")
    readonly_fields = ("key", "type", "ttl_display", "formatted_value", "updated")

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        now = kv_clock.now_ms()
        return super().get_queryset(request).filter(Q(expire_at__isnull=True) | Q(expire_at__gt=now))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        if not search_term:
            return queryset, False
        return queryset.filter(RedisGlob(F("key"), search_term)), False

    # -- columns and read-only fields

    @admin.display(description="value")
    def value_preview(self, entry: KVEntry) -> str:
        text = json.dumps(entry.value, ensure_ascii=False, separators=(", ", ": "))
        return text if len(text) <= PREVIEW_LENGTH else text[: PREVIEW_LENGTH - 1] + "…"

    @admin.display(description="TTL")
    def ttl_display(self, entry: KVEntry) -> str:
        seconds = ttl_seconds(entry)
        return "no expiry" if seconds is None else f"{seconds} s"

    @admin.display(description="value")
    def formatted_value(self, entry: KVEntry) -> str:
        return format_html('<pre class="kv-json">{}</pre>', pretty(entry.value))

    # -- forms

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        kwargs["form"] = KeyForm if obj is not None else AddKeyForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list:
        if obj is None:
            return [(None, {"fields": ["new_key", "new_type", "json_value", "ttl"]})]
        if not self.has_change_permission(request, obj):
            return [(None, {"fields": ["key", "type", "ttl_display", "formatted_value", "updated"]})]
        return [
            (None, {"fields": ["key", "type", "json_value", "updated"]}),
            ("Expiry", {"fields": ["ttl_display", "ttl", "remove_ttl"]}),
        ]

    def get_store(self) -> KVStore | None:
        return kv.get_store()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.type == ValueType.CACHE:
            return False  # kv.cache's own encoding: view and delete only
        return super().has_change_permission(request, obj)

    # -- writes through the store

    def save_model(self, request: HttpRequest, obj: KVEntry, form: KeyForm, change: bool) -> None:
        obj.key = save_key(self.store(), form, adding=not change)

    # delete_rows, not delete: the store's delete refuses kv.cache's rows, which may go here
    def delete_model(self, request: HttpRequest, obj: KVEntry) -> None:
        self.store().delete_rows(obj.key)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        keys = list(queryset.values_list("key", flat=True))
        if keys:
            self.store().delete_rows(*keys)

    def changeform_view(self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
                        extra_context: dict | None = None) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except KVError as e:  # a race the form could not see; the admin's transaction rolled back
            self.message_user(request, f"Nothing was written: {e}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
