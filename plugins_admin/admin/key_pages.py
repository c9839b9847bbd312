"""The key browser's list, a page at a time in key order: a step of the store's scan, no count.

Django's changelist counts the matching rows and the whole table on every page (two
``COUNT(*)``, each reading the table) to number its pages. Here a page is one step of the
walk ``store.scan`` makes (``kv.sql.scans``): at most ``list_per_page`` keys among the next
``kv.scans.MAX_COUNT`` rows after the cursor, read by the primary key index within the
search pattern's literal prefix, so a page costs the same on a table of any size. It links to the next page (``?cursor=``, the cursor ``store.scan`` returns) and back to
the first; a link to another search or filter starts on the first page.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import messages
from django.http import HttpRequest

from kv import clock as kv_clock
from kv.errors import InvalidCursor
from kv.models import ValueType
from kv.scans import MAX_COUNT, cursor_after, key_after

from .pages import PositionedPages

if TYPE_CHECKING:
    from kv.store import KVStore

    from .switches import SwitchedAdmin

#: the query-string parameter of the page's cursor
CURSOR_VAR = "cursor"
#: the list filter's parameter of the key type (``list_filter = ("type",)``)
TYPE_VAR = "type__exact"


class KeyPages(PositionedPages):
    """The changelist of ``KeyAdmin``: pages by key, no count, no page numbers."""

    #: the most rows a page reads to fill itself
    rows_per_page = MAX_COUNT
    model_admin: SwitchedAdmin[KVStore]

    position_var = CURSOR_VAR
    first_position = "0"

    def get_results(self, request: HttpRequest) -> None:
        after, keys, last = self._page(request)
        # the rows of the page's keys, through the list's queryset: its filters hold for them too
        self.result_list = self.queryset.filter(key__in=keys) if keys else self.queryset.none()
        # no count: the page's keys stand for it, so Django offers neither "N results" of a
        # search nor "select all N" across pages
        self.result_count = self.full_result_count = len(keys)
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.can_show_all = self.multi_page = False
        self.paginator = None
        self.next_page_url = None if last is None else self.get_query_string({CURSOR_VAR: cursor_after(last)})
        self.first_page_url = None if after is None else self.get_query_string()
        #: the page stopped at ``rows_per_page`` rows before it was full: say why it is short
        self.short_page = last is not None and len(keys) < self.list_per_page

    def _page(self, request: HttpRequest) -> tuple[str | None, list[str], str | None]:
        """``(the key the page starts after, its keys, the key the next page starts after)``."""
        try:
            after = key_after(self.position)
        except InvalidCursor as e:
            self.model_admin.message_user(request, f"{e}. This is the first page.", messages.ERROR)
            after = None
        if self.queryset.query.is_empty():  # a search refused or cancelled
            return after, [], None
        statements = self.model_admin.store().statements()
        keys, last = statements.scan(after, self.query or None, kv_clock.now_ms(), self.rows_per_page,
                                     limit=self.list_per_page, types=self._types())
        return after, keys, last

    def _types(self) -> tuple[str, ...]:
        """The key types the type filter asks for; every type, the cache's too, without it."""
        chosen = self.get_filters_params().get(TYPE_VAR)
        return tuple(chosen) if chosen else tuple(ValueType.values)
