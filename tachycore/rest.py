"""Django REST framework plumbing shared by the HTTP APIs of the apps (``kv.api``, ``jobs.api``).

Each app keeps what is its own: the names of its settings, the translation of its store's
errors into statuses, its messages. What they share lives here: permission classes named in
a setting, model permissions per operation, throttles whose rates are a setting, the JSON
error handler, error responses, field types and the OpenAPI hook. Only the apps' ``api``
packages import this module, so the kernel starts without loading DRF.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.http import QueryDict
from django.utils.module_loading import import_string
from rest_framework import serializers, status
from rest_framework.exceptions import (
    APIException,
    AuthenticationFailed,
    ErrorDetail,
    ValidationError,
)
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView, set_rollback
from rest_framework.views import exception_handler as drf_exception_handler

from .conf import parse_rate

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
    paths = getattr(app_settings, setting_name)
    try:
        return list(_imported(app_settings.setting_name, setting_name, tuple(paths)))
    except TypeError:  # an entry that cannot be a cache key (a dict...): refused below
        return _import_classes(app_settings.setting_name, setting_name, paths)


@functools.lru_cache(maxsize=64)
def _imported(app: str, setting_name: str, paths: tuple[Any, ...]) -> tuple[type, ...]:
    """The classes of ``paths``, imported once (the permission classes load at each request)."""
    return tuple(_import_classes(app, setting_name, paths))


def _import_classes(app: str, setting_name: str, paths: Any) -> list[type]:
    where = f'{app}["{setting_name}"]'
    classes = []
    for path in paths:
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


@dataclasses.dataclass(frozen=True)
class Needs:
    """What an operation asks of the user: any one of ``any_of``, each a tuple of permission
    names held together; ``what`` says the operation in the refusal's message."""

    what: str
    any_of: tuple[tuple[str, ...], ...]

    def message(self) -> str:
        names = " or ".join(" and ".join(names) for names in self.any_of)
        return f"You need the {names} permission to {self.what}."


class ModelPermission(BasePermission):
    """Grant a request when the user holds the model permissions its operation needs, as the
    admin asks them (``view`` or ``change`` to read, ``change`` to change, ``delete`` to
    delete). Subclasses map a request to its ``Needs`` in ``needs()``.

    Staff status is not asked for: in Django, ``is_staff`` says who may sign in to the admin
    site, and the model permissions say what a user may do with the data, in the admin as
    here. A service account that calls the API with a token holds the permissions it needs
    and no admin login. Superusers hold every permission; inactive users none.
    """

    message = "You do not have permission to perform this action."

    def needs(self, request: Any, view: Any) -> Needs:
        raise NotImplementedError

    def has_permission(self, request: Any, view: Any) -> bool:
        needs = self.needs(request, view)
        user = request.user
        if user is not None and any(user.has_perms(names) for names in needs.any_of):
            return True
        self.message = needs.message()  # read by DRF (and EveryClassPermission) on refusal
        return False


# -- throttles -----------------------------------------------------------------------------

#: the scope of anonymous requests (counted per IP) and of failed authentications
ANON_SCOPE = "anon"


def client_ip(request: Any) -> str:
    """The address a throttle counts an anonymous client by.

    ``X-Forwarded-For`` is read only when ``REST_FRAMEWORK["NUM_PROXIES"]`` says how many
    proxies of the site's own write it (then as DRF reads it); without it the header is
    ignored and ``REMOTE_ADDR`` counts, since any client can write the header and would
    change it at each request to dodge the count.
    """
    if api_settings.NUM_PROXIES is None:
        return request.META.get("REMOTE_ADDR") or ""
    return BaseThrottle().get_ident(request) or ""


class AppRateThrottle(SimpleRateThrottle):
    """A throttle whose rates are an app's ``THROTTLE_RATES`` setting, read at each request.

    A signed-in user is counted per user in the scope ``scope_of()`` names (``read``,
    ``write``...); an anonymous request per IP in ``anon``. Failed authentications are
    counted per IP at the ``anon`` rate, in a count of their own (see ``ThrottledAuthentication``).
    A rate of ``None`` turns its scope off. The counts live in the default cache, as DRF's
    own throttles keep them: per process with ``LocMemCache``, site-wide with a shared cache.
    """

    #: the start of the counts' cache keys: the app's label
    prefix = ""

    def __init__(self) -> None:  # the rate depends on the request: see _use()
        self.rate = None

    def app_settings(self) -> AppSettings:
        raise NotImplementedError

    def scope_of(self, request: Any, view: Any) -> str:
        raise NotImplementedError

    def allow_request(self, request: Any, view: Any) -> bool:
        user = request.user
        if user is not None and user.is_authenticated:
            on = self._use(self.scope_of(request, view), f"user{user.pk}")
        else:
            on = self._use(ANON_SCOPE, client_ip(request))
        if not on:
            return True
        if len(self._history()) >= self.num_requests:
            return self.throttle_failure()
        return self.throttle_success()

    def allow_authentication(self, request: Any) -> bool:
        """Whether this IP may have credentials checked: ``False`` once it failed the ``anon``
        rate's number of times within its period (this call counts nothing)."""
        if not self._use(ANON_SCOPE, client_ip(request), count="failed_auth"):
            return True
        return len(self._history()) < self.num_requests

    def record_failed_authentication(self, request: Any) -> None:
        """Count a failed authentication against the request's IP."""
        if self._use(ANON_SCOPE, client_ip(request), count="failed_auth"):
            self._history()
            self.throttle_success()

    def _use(self, scope: str, ident: str, count: str | None = None) -> bool:
        """Point this throttle at the count ``count`` (default: the scope's) of ``ident``, at
        the rate of ``scope``; ``False`` when that rate is off."""
        self.scope = scope
        self.rate = self.app_settings().THROTTLE_RATES.get(scope)
        if self.rate is None:
            return False
        self.num_requests, self.duration = parse_rate(self.rate)
        self.key = self.cache_format % {"scope": f"{self.prefix}_{count or scope}", "ident": ident}
        return True

    def _history(self) -> list[float]:
        """The times of the counted requests still inside the period, newest first."""
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return self.history


class ThrottledAuthentication(APIView):
    """A view whose client is refused (429) before its credentials are checked once its IP
    failed authentication too often (the ``anon`` rate of the view's ``AppRateThrottle``):
    DRF authenticates before it throttles, so a guesser of tokens or passwords would
    otherwise never be slowed down. Each failed authentication is counted.
    """

    def perform_authentication(self, request: Any) -> None:
        throttles = [throttle for throttle in self.get_throttles() if isinstance(throttle, AppRateThrottle)]
        for throttle in throttles:
            if not throttle.allow_authentication(request):
                self.throttled(request, throttle.wait() or 1.0)
        try:
            request.user  # noqa: B018 (authenticates)
        except AuthenticationFailed:
            for throttle in throttles:
                throttle.record_failed_authentication(request)
            raise


# -- content negotiation -------------------------------------------------------------------

#: the ``Accept`` headers for which DRF's negotiation picks a JSON renderer as ``application/json``
_JSON_OR_ANY = frozenset({"application/json", "*/*"})


class JSONNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, answered at once for the usual request of a view whose first
    renderer writes JSON: ``Accept: application/json``, ``*/*`` or none, no query string, no
    format suffix. DRF's own negotiation, which parses the header into media types and their
    precedence, reaches the same answer; any other request goes through it (a 406 included).
    """

    def select_renderer(self, request: Any, renderers: Any, format_suffix: str | None = None) -> Any:
        if (not format_suffix and renderers and renderers[0].media_type == "application/json"
                and request.META.get("HTTP_ACCEPT", "*/*") in _JSON_OR_ANY
                and not request.META.get("QUERY_STRING")):
            return renderers[0], "application/json"
        return super().select_renderer(request, renderers, format_suffix)


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


class StringField(serializers.CharField):
    """A string given as a JSON string: no numbers or booleans, which DRF's ``CharField``
    would quietly turn into text (``226`` into ``"226"``). ``max_length`` counts the string
    as sent, as the schema's ``maxLength`` does, before any whitespace is trimmed."""

    default_error_messages = {"invalid": "A string (a JSON string) is required."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


def validated(serializer: serializers.Serializer, data: Any) -> Any:
    """What ``type(serializer)(data=data).is_valid(raise_exception=True)`` validates, and the
    same ``ValidationError`` (a 400) for bad data, through ``serializer``, made once and never
    given data.

    DRF deep-copies every declared field into each serializer it makes, which costs a small
    body more than its validation; validating keeps nothing on the serializer, so one serves
    every request (as its ``to_representation`` serves every response).
    """
    try:
        return serializer.run_validation(data)
    except ValidationError as exc:
        detail = exc.detail
        if isinstance(detail, list) and len(detail) == 1 and getattr(detail[0], "code", None) == "null":
            # as Serializer.errors words a null body
            detail = {api_settings.NON_FIELD_ERRORS_KEY: [ErrorDetail("No data provided", code="null")]}
        raise ValidationError(detail) from None


class QuerySerializer(serializers.Serializer):
    """A query string's serializer where an empty value (``?limit=``) is validated like any
    other, so a field that needs a value refuses it with a 400. DRF reads a ``QueryDict`` as an
    HTML form, where an empty field counts as omitted, and would quietly use the default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if isinstance(kwargs.get("data"), QueryDict):
            # the last value of a repeated parameter, as request.GET[name] gives
            kwargs["data"] = kwargs["data"].dict()
        super().__init__(*args, **kwargs)


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
