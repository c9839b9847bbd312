"""Admin pages of an app that a setting can turn off (``JOBS["DISABLED"]``, ``KV["DISABLED"]``)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse


class SwitchedAdmin[Store](admin.ModelAdmin):
    """While the app is off, its pages are gone from the admin's index and each answers
    404 saying how to turn the app back on; while it is on, they work through its store."""

    #: what the 404 says, e.g. 'jobs is disabled (JOBS["DISABLED"])'
    off_message = ""

    def get_store(self) -> Store | None:
        """The app's store, ``None`` while the app is off."""
        raise NotImplementedError

    def store(self) -> Store:
        """The app's store; a 404 saying why while the app is off."""
        store = self.get_store()
        if store is None:
            raise Http404(self.off_message)
        return store

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.get_store() is not None and super().has_module_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        self.store()
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.store()
        return super().changeform_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.store()
        return super().delete_view(request, *args, **kwargs)

    def history_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.store()
        return super().history_view(request, *args, **kwargs)
