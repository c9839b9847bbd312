"""The query-string lookups an admin list accepts: those of its own filters, no others.

Django's admin lets a list URL filter on any lookup of the model's own fields
(``?key__regex=``, ``?value__contains=``): one catastrophic regular expression holds a
database connection for many seconds, and a lookup the field cannot do is a 500. The
filters shown on the page, the date hierarchy and our own links (the job dashboard's
links to filtered lists) use only a few parameters; every other one is refused with
Django's ``DisallowedModelAdminLookup``, which the admin answers with a 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.filters import FieldListFilter, SimpleListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.db.models import Field
from django.http import HttpRequest

#: the parts of a date the date hierarchy's links filter on
DATE_HIERARCHY_PARTS = ("year", "month", "day")


class FilterLookupsOnly(admin.ModelAdmin):
    """A ModelAdmin whose list takes only the parameters its list filters and date
    hierarchy take (the dashboard links to filtered lists through those same filters)."""

    def lookup_allowed(self, lookup: str, value: Any, request: HttpRequest) -> bool:
        return lookup in self.filter_parameters(request)

    def filter_parameters(self, request: HttpRequest) -> set[str]:
        """The query-string parameters of the list filters and the date hierarchy."""
        names = {name for list_filter in self.get_list_filter(request)
                 for name in self._parameters_of(request, list_filter)}
        if self.date_hierarchy:
            names.update(f"{self.date_hierarchy}__{part}" for part in DATE_HIERARCHY_PARTS)
        return names

    def _parameters_of(self, request: HttpRequest, list_filter: Any) -> list[str]:
        """The parameters of one ``list_filter`` entry, asked of the filter built with no
        parameters, as the list builds it."""
        if isinstance(list_filter, type) and issubclass(list_filter, SimpleListFilter):
            # its one name is fixed; building it would run its lookups() (a query)
            return [list_filter.parameter_name] if list_filter.parameter_name else []
        if callable(list_filter):  # another ListFilter class
            return list_filter(request, {}, self.model, self).expected_parameters()
        field, filter_class = (list_filter if isinstance(list_filter, (list, tuple))
                               else (list_filter, FieldListFilter.create))
        field_path = None
        if not isinstance(field, Field):
            field_path, field = field, get_fields_from_path(self.model, field)[-1]
        spec = filter_class(field, request, {}, self.model, self, field_path=field_path)
        return spec.expected_parameters()
