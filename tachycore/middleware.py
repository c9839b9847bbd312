"""``KernelMiddleware``: starts the kernel's process services, runs each request in its
trace and enforces maintenance mode."""

from __future__ import annotations

import contextlib
import copy
from typing import Any, cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from opentelemetry import trace

from . import audit
from .conf import tachycore_settings
from .errors import CapabilityDenied
from .maintenance import maintenance
from .runtime import runtime
from .trace import span, traceparent

RETRY_AFTER_SECONDS = 60


class KernelMiddleware:
    """Put it after ``AuthenticationMiddleware``.

    The process registers as a supervisor node and starts its sync listener when
    the server builds its handler, at start (and again at the first request of a
    process forked after that, such as a gunicorn worker of ``--preload``), so
    that ``JOBS["AUTO_START"]``'s dispatcher runs before any request arrives. While the site is in maintenance, every request
    from a user who is not staff gets a 503 with the message: JSON
    ``{"detail": ...}`` under ``/api/``, an HTML page elsewhere. Paths in
    ``TACHYCORE["MAINTENANCE_EXEMPT_PATHS"]`` (the admin login) stay open so
    that staff can sign in.

    Staff get through however they authenticate: under ``/api/``, a request whose
    session user is not staff has its credentials (a token, Basic...) checked by DRF's
    ``DEFAULT_AUTHENTICATION_CLASSES``, and an active staff user they name goes through.
    Credentials that fail leave the request anonymous: a 503 like any other.

    Sync and async alike: under ASGI with async views it is a coroutine, and nothing it
    does waits on the database in the event loop's thread (the maintenance state is a
    copy, checked on a worker thread; users and credentials are read through
    ``sync_to_async``).

    The audit trail knows the request it serves (``tachycore.audit.request_user``): it
    reads the request's user only when it records a row, so other requests pay nothing.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        _start_runtime()

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        _start_runtime()
        with _request_trace(request), audit.request_user(request):
            response = self._respond(request)
            response.headers.setdefault("traceparent", traceparent())
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if not runtime.started and tachycore_settings.START_RUNTIME:
            await sync_to_async(_start_runtime)()
        with _request_trace(request), audit.request_user(request):
            state = maintenance.current()
            if state.enabled and not await self._alet_through(request):
                response = self._unavailable(request, state.message)
            else:
                response = await self.get_response(request)
            response.headers.setdefault("traceparent", traceparent())
        return response

    async def _alet_through(self, request: HttpRequest) -> bool:
        """``_let_through``, with the user and the credentials read off the event loop."""
        if _exempt(request.path):
            return True
        auser = getattr(request, "auser", None)
        if auser is not None and _is_staff(await auser()):
            return True
        return request.path.startswith("/api/") and _is_staff(await sync_to_async(_api_user)(request))

    def _respond(self, request: HttpRequest) -> HttpResponse:
        state = maintenance.current()
        if state.enabled and not self._let_through(request):
            return self._unavailable(request, state.message)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A plugin's view refused by its grants: under ``/api/`` a JSON 403 with the reason
        (DRF's views answer so by themselves); elsewhere Django's 403 page."""
        if isinstance(exception, CapabilityDenied) and request.path.startswith("/api/"):
            return JsonResponse({"detail": str(exception)}, status=403)
        return None

    def _let_through(self, request: HttpRequest) -> bool:
        if _exempt(request.path) or _is_staff(getattr(request, "user", None)):
            return True
        return request.path.startswith("/api/") and _is_staff(_api_user(request))

    def _unavailable(self, request: HttpRequest, message: str) -> HttpResponse:
        text = message or "The site is down for maintenance. Please try again soon."
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            response: HttpResponse = JsonResponse({"detail": text, "maintenance": True}, status=503)
        else:
            html = render_to_string("tachycore/maintenance.html", {"message": text}, request=request)
            response = HttpResponse(html, status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


def _request_trace(request: HttpRequest) -> contextlib.AbstractContextManager[object]:
    """The request's span: a child of its ``traceparent`` header (a new trace without a valid
    one), unless an instrumentation (``opentelemetry-instrumentation-django``) made one already."""
    if trace.get_current_span().get_span_context().is_valid:
        return contextlib.nullcontext()
    return span(f"{request.method} {request.path}", request.headers, kind=trace.SpanKind.SERVER)


def _exempt(path: str) -> bool:
    """Served during maintenance to everyone (the admin's login, static files)."""
    return any(path.startswith(prefix) for prefix in tachycore_settings.MAINTENANCE_EXEMPT_PATHS)


def _is_staff(user: Any) -> bool:
    return user is not None and user.is_active and user.is_staff


def _api_user(request: HttpRequest) -> Any:
    """The user the request's API credentials name, as DRF's configured authentication
    classes read them; ``None`` without DRF, without credentials or when they fail.

    The session was looked at already (``request.user``), so DRF's session class is left
    out: it would check the CSRF token, reading a form body the view needs. DRF sets the
    user it finds on the request it wraps: a copy, so the view authenticates as before.
    DRF is imported here, not at the top: the kernel runs on sites without it.
    """
    try:
        from rest_framework.authentication import BaseAuthentication, SessionAuthentication
        from rest_framework.exceptions import APIException
        from rest_framework.request import Request
        from rest_framework.settings import api_settings
    except ImportError:
        return None
    classes = cast(list[type[BaseAuthentication]], api_settings.DEFAULT_AUTHENTICATION_CLASSES)
    authenticators = [
        authentication() for authentication in classes if not issubclass(authentication, SessionAuthentication)
    ]
    if not authenticators:
        return None
    try:
        return Request(copy.copy(request), authenticators=authenticators).user
    except APIException:  # wrong credentials: not let through
        return None


def _start_runtime() -> None:
    if not runtime.started and tachycore_settings.START_RUNTIME:
        runtime.start(kind="web")
