"""Django REST framework plumbing shared by the HTTP APIs of the apps (``kv.api``, ``jobs.api``).

Each app keeps what is its own: the names of its settings, the translation of its store's
errors into statuses, its messages. What they share lives here: permission classes named in
a setting, the JSON error handler, error responses, field types and the OpenAPI hook. Only
the apps' ``api`` packages import this module, so the kernel starts without loading DRF.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

if TYPE_CHECKING:
    from drf_spectacular.utils import OpenApiResponse

    from .conf import AppSettings

# -- permissions ---------------------------------------------------------------------------


class PermissionClassError(ImproperlyConfigured):
    """An entry of a ``...PERMISSION_CLASSES`` setting that does not name an importable
    permission class."""


def load_permission_classes(app_settings: AppSettings, setting_name: str) -> list[type]:
    """Import the classes listed in ``app_settings.<setting_name>``.

    ``PermissionClassError`` names the setting as users write it (``KV["READ_PERMISSION_CLASSES"]``)
    and the bad entry.
    """
    where = f'{app_settings.setting_name}["{setting_name}"]'
    classes = []
    for path in getattr(app_settings, setting_name):
        if not isinstance(path, str):
            raise PermissionClassError(f"{where}: {path!r} is not a dotted path")
        try:
            permission_class = import_string(path)
        except ImportError as e:
            raise PermissionClassError(f"{where}: cannot import {path!r}: {e}") from e
        if not isinstance(permission_class, type) or not hasattr(permission_class, "has_permission"):
            raise PermissionClassError(f"{where}: {path!r} is not a permission class (no has_permission())")
        classes.append(permission_class)
    return classes


def permission_class_errors(
    app_settings: AppSettings, setting_names: tuple[str, ...], *, hint: str, id: str
) -> list[checks.CheckMessage]:
    """A system check's errors: one for each of ``setting_names`` whose classes do not import."""
    errors: list[checks.CheckMessage] = []
    for setting_name in setting_names:
        try:
            load_permission_classes(app_settings, setting_name)
        except PermissionClassError as e:
            errors.append(checks.Error(str(e), hint=hint, id=id))
        except ImproperlyConfigured:
            pass  # not a list at all: the app's settings check reports it
    return errors


class EveryClassPermission(BasePermission):
    """Grant a request when every configured class grants it; an empty list grants everyone.

    Subclasses say which classes apply to a request in ``get_permission_classes()``. The
    classes are loaded on each request, so a changed setting applies at once.
    """

    def get_permission_classes(self, request: Any) -> list[type]:
        raise NotImplementedError

    def has_permission(self, request: Any, view: Any) -> bool:
        return self._granted(request, lambda permission: permission.has_permission(request, view))

    def has_object_permission(self, request: Any, view: Any, obj: Any) -> bool:
        return self._granted(request, lambda permission: permission.has_object_permission(request, view, obj))

    def _granted(self, request: Any, grants: Callable[[Any], bool]) -> bool:
        for permission_class in self.get_permission_classes(request):
            permission = permission_class()
            if not grants(permission):
                # DRF reads the refusal's message and code from the class that refused
                self.message = getattr(permission, "message", None)
                self.code = getattr(permission, "code", None)
                return False
        return True


# -- errors --------------------------------------------------------------------------------


class BadRequest(APIException):
    """400: a request the API refuses; the detail says why."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


class Conflict(APIException):
    """409: the data is in a state the operation cannot apply to."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class TooLarge(APIException):
    """413: a value over the app's size limit."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


def describe(errors: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Flatten DRF's validation errors into ``"field: message"`` lines."""
    if isinstance(errors, dict):
        return [
            line
            for name, nested in errors.items()
            for line in describe(nested, path if name == api_settings.NON_FIELD_ERRORS_KEY else (*path, str(name)))
        ]
    if isinstance(errors, list):
        return [line for nested in errors for line in describe(nested, path)]
    return [f"{'.'.join(path)}: {errors}" if path else str(errors)]


def handle_exception(exc: Exception, context: dict[str, Any], *, logger: logging.Logger, api_name: str) -> Response:
    """DRF's handler, with validation errors under ``detail`` (the per-field errors stay in
    ``errors``) and a JSON 500 for everything else, logged to ``logger``.

    The app translates its store's errors into ``APIException``\\ s before calling this.
    """
    response = drf_exception_handler(exc, context)
    if response is None:
        set_rollback()
        if isinstance(exc, PermissionClassError):  # a settings mistake: its message says it all
            logger.error("%s refused a request: %s", api_name, exc)
        else:
            logger.error("%s: unexpected error", api_name, exc_info=exc)
        return Response({"detail": "The server could not handle this request; the error is logged."},
                        status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    if isinstance(exc, ValidationError):
        response.data = {"detail": " ".join(describe(response.data)), "errors": response.data}
    return response


# -- serializers ---------------------------------------------------------------------------


class WholeNumberField(serializers.IntegerField):
    """An integer given as a JSON number: no strings, booleans or fractions."""

    default_error_messages = {"invalid": "A whole number (a JSON integer) is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


# every error of the APIs, ``{"detail": ...}``; no docstring, which drf-spectacular would
# publish as the component's description
class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


# -- OpenAPI (drf-spectacular) -------------------------------------------------------------


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    """``extend_schema(responses=...)`` entries: ``{"detail": ...}`` for each status code."""
    from drf_spectacular.utils import OpenApiResponse

    return {code: OpenApiResponse(ErrorSerializer) for code in codes}


def api_served(app_settings: AppSettings, plugin_name: str) -> bool:
    """Whether an app's API answers now: its ``HTTP_ENABLED`` setting and its plugin enabled."""
    from .manager import plugin_manager

    return app_settings.HTTP_ENABLED and plugin_manager.is_enabled(plugin_name)


def without_viewset(endpoints: list[tuple[str, str, str, Any]], viewset: type) -> list:
    """drf-spectacular's endpoints less those served by ``viewset`` (or a subclass of it).

    The apps' preprocessing hooks call it while their API is off, so the schema never lists
    an API the site does not serve.
    """
    return [
        endpoint for endpoint in endpoints
        if not issubclass(getattr(endpoint[3], "cls", type(None)), viewset)
    ]
