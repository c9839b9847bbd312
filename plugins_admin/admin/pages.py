"""The lists of big tables (jobs, audit): pages by key, and counts estimated where an exact
one would read the table.

Django's changelist counts the matching rows and the whole table on every page (two
``COUNT(*)``, each reading every row on PostgreSQL and SQLite) to number its pages, and
reaches page ``p`` with an ``OFFSET`` that reads the rows of the pages before it. Here:

- a page is the next ``list_per_page`` rows in the list's fixed order (newest first) after
  the last row of the page before, named in the URL (``?after=``): the rows are read in
  index order from there, so a page costs the same on a table of any size. The column
  headers do not sort (another order would need a sort of every matching row);
- the count says how many rows the list has without reading them all (``count_rows``): a
  list counts its rows exactly up to ``EXACT_UP_TO`` (a bounded read); beyond that the count
  is the database's estimate (``estimated_rows``), and the page says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.main import ChangeList
from django.db import connections
from django.db.models import Max, Min, Model, Q, QuerySet
from django.db.models.expressions import Combinable
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

#: the query-string parameter of the page's start: the key of the previous page's last row
AFTER_VAR = "after"
#: a list with filters or a search counts its rows exactly up to this many
EXACT_UP_TO = 1000


@dataclasses.dataclass(frozen=True)
class RowCount:
    """How many rows a list has: ``value`` exactly, at least ``value`` (``more``: the exact
    count stopped at ``EXACT_UP_TO``), or about ``value`` (``estimated``)."""

    value: int
    estimated: bool = False
    more: bool = False

    @property
    def figure(self) -> str:
        """``value`` with thousands separated: ``"1,234,567"``."""
        return f"{self.value:,}"


def estimated_rows(queryset: QuerySet) -> int | None:
    """The number of rows of ``queryset`` as the database estimates it without reading them,
    or ``None`` where it has no estimate.

    PostgreSQL: the planner's row estimate (``EXPLAIN``; from ``pg_class.reltuples`` scaled to
    the table's current size, and the column statistics for a filter). SQLite keeps no row
    estimate a query can read: the whole table's rows are estimated from its integer primary
    key (``max(id) - min(id) + 1``: two reads of the index; exact until rows are deleted out of
    order), a filtered list has none.
    """
    connection = connections[queryset.db]
    if connection.vendor == "postgresql":
        sql, params = queryset.order_by().values("pk").query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
            plan = cursor.fetchone()[0]
        if isinstance(plan, str):
            plan = json.loads(plan)
        return int(plan[0]["Plan"]["Plan Rows"])
    if not queryset.query.where and queryset.model._meta.pk.get_internal_type() in (
            "AutoField", "BigAutoField"):
        # two queries: SQLite reads one end of the index for a lone MIN() or MAX(), and scans
        # the table for both in one SELECT
        ids = queryset.order_by().values_list("pk", flat=True)
        low, high = ids.aggregate(low=Min("pk"))["low"], ids.aggregate(high=Max("pk"))["high"]
        return 0 if low is None or high is None else high - low + 1
    return None


def count_rows(queryset: QuerySet, whole_table: bool) -> RowCount:
    """The count a list shows (``whole_table``: no filter and no search narrows it).

    A list is counted exactly up to ``EXACT_UP_TO`` rows (at most that many read); the whole
    table only when its estimate says it is that small (a small site sees "12 jobs").
    Beyond, the database's estimate, or "more than ``EXACT_UP_TO``" without one.
    """
    estimate = estimated_rows(queryset) if whole_table else None
    if estimate is None or estimate <= EXACT_UP_TO:
        exact = queryset.order_by()[:EXACT_UP_TO + 1].count()
        if exact <= EXACT_UP_TO:
            return RowCount(exact)
        estimate = estimate if whole_table else estimated_rows(queryset)
        if estimate is None:
            return RowCount(EXACT_UP_TO, more=True)
        # the estimate of a list just counted past EXACT_UP_TO may be lower: not below what was counted
        estimate = max(estimate, EXACT_UP_TO + 1)
    return RowCount(estimate, estimated=True)


def keyset_after(keys: Sequence[str], values: Sequence[Any]) -> Q:
    """The rows after ``values`` in the descending order of ``keys`` (a row comparison
    ``(k1, k2) < (v1, v2)``, with ``k1 <= v1`` beside it: the range an index on ``k1`` reads)."""
    first, *rest = zip(keys, values, strict=True)
    if not rest:
        return Q(**{f"{first[0]}__lt": first[1]})
    return Q(**{f"{first[0]}__lte": first[1]}) & (
        Q(**{f"{first[0]}__lt": first[1]}) | (Q(**{first[0]: first[1]}) & keyset_after(keys[1:], values[1:])))


class PositionedPages(ChangeList):
    """A changelist whose page is a position in the query string (``position_var``, read into
    ``self.position``): not a filter of the rows, left out of the links the list makes, so a
    new search or filter starts on the first page."""

    position_var: str
    first_position = ""

    def __init__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> None:
        self.position = request.GET.get(self.position_var, self.first_position)
        super().__init__(request, *args, **kwargs)
        # the search form sends the other parameters along: a new search starts on the first page
        self.params.pop(self.position_var, None)

    def get_filters_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        lookup_params = super().get_filters_params(params)
        lookup_params.pop(self.position_var, None)  # not a filter of the rows
        return lookup_params

    def get_query_string(self, new_params: dict[str, Any] | None = None,
                         remove: Iterable[str] | None = None) -> str:
        return super().get_query_string(new_params, [*(remove or ()), self.position_var])


class KeysetPages(PositionedPages):
    """A changelist paged by key (``?after=``) in the fixed order ``model_admin.keyset``
    (field names, newest first; the primary key without it), with its count estimated
    (``RowCount``)."""

    position_var = AFTER_VAR

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(getattr(self.model_admin, "keyset", (self.lookup_opts.pk.name,)))

    def get_ordering(self, request: HttpRequest, queryset: QuerySet) -> list[str | Combinable]:
        # the keyset's order, whatever ``?o=`` asks: the pages follow it
        return [f"-{key}" for key in self.keys]

    def get_results(self, request: HttpRequest) -> None:
        queryset = self.queryset
        start = self._start(request)
        if start is not None:
            queryset = queryset.filter(keyset_after(self.keys, start))
        page, more = self._rows(queryset)
        whole_table = not self.has_active_filters and not self.query
        self.row_count = count_rows(self.queryset, whole_table)
        # the count shows in the page's footer; the search form shows none ("N results") of its own
        self.result_count = self.full_result_count = self.row_count.value
        self.show_full_result_count = False
        self.show_admin_actions = True
        self.result_list = page
        self.can_show_all = self.multi_page = False
        self.paginator = None
        self.next_page_url = self.get_query_string({AFTER_VAR: self._cursor(page[-1])}) if more else None
        self.first_page_url = None if start is None else self.get_query_string()

    def _rows(self, queryset: QuerySet) -> tuple[list[Model], bool]:
        """The page's rows, and whether more follow: their ids first, then the rows of those ids.

        The ids come from an index alone where one holds the filtered column and the key (SQLite
        finds a topic's jobs through ``jobs_status_topic``, then sorts their ids): reading whole
        rows instead, it would sort every matching row to keep a hundred.
        """
        ordered = queryset.order_by(*self.ids_ordering())
        ids = list(ordered.values_list("pk", flat=True)[:self.list_per_page + 1])
        shown = ids[:self.list_per_page]
        rows = {row.pk: row for row in self.queryset.order_by().filter(pk__in=shown)} if shown else {}
        return [rows[pk] for pk in shown if pk in rows], len(ids) > self.list_per_page

    def ids_ordering(self) -> list[Any]:
        """The order the page's ids are read in: the keys' (what a subclass returns instead
        must sort the same rows the same way)."""
        return [f"-{key}" for key in self.keys]

    def _cursor(self, row: Model) -> str:
        """The ``?after=`` value of ``row``: its keys, ISO datetimes and integers, comma-separated."""
        values = [getattr(row, key) for key in self.keys]
        return ",".join(value.isoformat() if hasattr(value, "isoformat") else str(value) for value in values)

    def _start(self, request: HttpRequest) -> list[Any] | None:
        """The keys ``?after=`` names (``None`` on the first page, or when they make no sense:
        then the page says so and shows the first page)."""
        if not self.position:
            return None
        parts = self.position.split(",")
        values: list[Any] = []
        if len(parts) == len(self.keys):
            for key, part in zip(self.keys, parts, strict=True):
                field = self.lookup_opts.get_field(key)
                if field.get_internal_type() == "DateTimeField":
                    values.append(_datetime(part.replace(" ", "+")))  # a "+" of the URL reads as a space
                else:
                    values.append(int(part) if part.isascii() and part.isdigit() else None)  # not "²"
        if len(values) != len(self.keys) or any(value is None for value in values):
            self.model_admin.message_user(request, f"Not a page of this list: {self.position!r}. This is the first page.",
                                          messages.ERROR)
            return None
        return values


def _datetime(text: str) -> datetime.datetime | None:
    """The datetime ``text`` names, in UTC where time zones are on (one without an offset in
    the current time zone); ``None`` when it names none, or one that has no UTC time (a year
    1 or 9999 datetime whose offset moves it out of range: Python's and the databases'
    conversions would fail on it)."""
    try:
        value = parse_datetime(text)
        if value is None or not settings.USE_TZ:
            return value
        if timezone.is_naive(value):
            value = timezone.make_aware(value)
        return value.astimezone(datetime.UTC)
    except (ValueError, OverflowError):  # well formed, but no such date, or none in UTC
        return None
