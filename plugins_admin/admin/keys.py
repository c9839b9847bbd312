"""Admin pages: the key browser of ``kv``.

The list shows live keys (expired rows count as absent, as in the store), a page at a time
in key order as ``store.scan`` walks them, with no count (``key_pages``); the search box
takes a Redis glob pattern, matched in SQL exactly as ``store.keys(pattern)`` matches it,
within the same limits (``kv.sql.glob``) and, on PostgreSQL, the same
``KV["KEYS_TIMEOUT"]``. Every write goes through ``kv.get_store()`` (so L1 caches everywhere
drop the key), never through the ORM: an edit validates the JSON first and writes
nothing when it is refused.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import SEARCH_VAR
from django.db import NotSupportedError
from django.db.models import F, Lookup, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.html import format_html

import kv
from kv import clock as kv_clock
from kv.conf import kv_settings
from kv.errors import InvalidPattern, KVError, SearchTimeout
from kv.models import KVEntry, ValueType
from kv.sql.glob import (
    MAX_PATTERN_LENGTH,
    MAX_PATTERN_WILDCARDS,
    check_pattern,
    glob_to_regex,
    glob_to_sqlite,
    key_bounds,
    length_bounds,
)
from kv.sql.postgresql import key_range_sql
from kv.store import KVStore

from .key_forms import AddKeyForm, KeyForm, pretty, save_key
from .key_pages import KeyPages
from .lookups import FilterLookupsOnly
from .switches import SwitchedAdmin

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler

    #: a lookup's SQL and its parameters (a tuple, as Django's own lookups return)
    CompiledSQL = tuple[str, tuple[str | int, ...]]

PREVIEW_LENGTH = 80
#: set on a request whose search was cancelled at ``KV["KEYS_TIMEOUT"]``: the page it gets
#: again lists nothing
_SEARCH_CANCELLED = "_kv_search_cancelled"


# -- glob search -------------------------------------------------------------------------------


class RedisGlob(Lookup):
    """``lhs`` matches a Redis glob pattern, translated as ``kv.sql`` translates it for
    ``store.keys()``: ``GLOB`` on SQLite, a regular expression on PostgreSQL; ``%`` and
    ``_`` are literal characters on both. As there, the pattern runs last, on the keys left
    by its literal prefix (a key range on the primary key index) and its length."""

    lookup_name = "redis_glob"
    prepare_rhs = False

    def as_sqlite(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> CompiledSQL:
        lhs, params = self.process_lhs(compiler, connection)
        pattern = glob_to_sqlite(self.rhs)
        if pattern is None:  # an empty set: nothing can match
            return "1 = 0", ()
        return self._narrowed(lhs, tuple(params), f"{lhs} >= %s AND {lhs} < %s", f"{lhs} GLOB %s", pattern)

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> CompiledSQL:
        lhs, params = self.process_lhs(compiler, connection)
        key_range = key_range_sql(lhs, connection, "%s", "%s")
        return self._narrowed(lhs, tuple(params), key_range, f"{lhs} ~ %s", glob_to_regex(self.rhs))

    def _narrowed(self, lhs: str, lhs_params: tuple, key_range: str, match: str, pattern: str) -> CompiledSQL:
        """``match`` after the key range of the literal prefix and the bound on the length;
        each appearance of ``lhs`` takes its parameters."""
        parts: list[tuple[str, tuple]] = []
        bounds = key_bounds(self.rhs)
        if bounds is not None:
            parts.append((key_range, (*lhs_params, bounds[0], *lhs_params, bounds[1])))
        length, exact = length_bounds(self.rhs)
        # a CASE, not AND: PostgreSQL orders the conditions of a WHERE by their estimated
        # cost, and rates a regular expression cheaper than a comparison of a length
        parts.append((f"CASE WHEN length({lhs}) {'=' if exact else '>='} %s THEN {match} ELSE false END",
                      (*lhs_params, length, *lhs_params, pattern)))
        return f"({' AND '.join(sql for sql, _ in parts)})", tuple(p for _, some in parts for p in some)

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
    sortable_by = ()  # pages follow the key order (KeyPages)
    search_fields = ("key",)
    search_help_text = ("A Redis glob pattern: * any characters, ? one, [a-z] a set, "
                        "\\ takes the next character literally (user:*, job:??, [a-c]*); "
                        f"at most {MAX_PATTERN_LENGTH} characters and {MAX_PATTERN_WILDCARDS} wildcards.")
    readonly_fields = ("key", "type", "ttl_display", "formatted_value", "updated")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[KeyPages]:
        return KeyPages

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        now = kv_clock.now_ms()
        return super().get_queryset(request).filter(Q(expire_at__isnull=True) | Q(expire_at__gt=now))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        """The keys matching the search as a glob; none, under an error message, for a
        pattern past the limits of ``kv.sql.glob`` or a search cancelled at its timeout."""
        if not search_term:
            return queryset, False
        if getattr(request, _SEARCH_CANCELLED, False):
            return queryset.none(), False
        try:
            pattern = check_pattern(search_term)
        except InvalidPattern as e:
            self.message_user(request, f"Search refused: {e}.", messages.ERROR)
            return queryset.none(), False
        return queryset.filter(RedisGlob(F("key"), pattern)), False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        """With a search, the page is rendered under ``KV["KEYS_TIMEOUT"]`` (its queries run
        while it renders); a search cancelled there gives the page again, empty, with the error."""
        search = request.GET.get(SEARCH_VAR, "")
        if not search:
            return super().changelist_view(request, extra_context)
        try:
            with self.store().statements().time_limit(kv_settings.KEYS_TIMEOUT, search):
                response = super().changelist_view(request, extra_context)
                if isinstance(response, TemplateResponse):
                    response.render()
                return response
        except SearchTimeout as e:
            self.message_user(request, f"Search cancelled: {e}.", messages.ERROR)
            setattr(request, _SEARCH_CANCELLED, True)
            return super().changelist_view(request, extra_context)

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
