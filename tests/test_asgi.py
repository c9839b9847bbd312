"""Under ASGI: the kernel middleware runs as a coroutine, plugin views as their plugin,
maintenance and the trace as under WSGI."""

from __future__ import annotations

import asyncio
import re

import pytest
from asgiref.sync import iscoroutinefunction
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import AsyncClient
from rest_framework.authtoken.models import Token

from tachycore.maintenance import maintenance
from tachycore.middleware import KernelMiddleware

pytestmark = pytest.mark.django_db(transaction=True)

TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


def get(path: str, client: AsyncClient | None = None, **headers):
    return asyncio.run((client or AsyncClient()).get(path, headers=headers))


def test_the_middleware__is_a_coroutine_in_an_async_chain_and_plain_in_a_sync_one():
    async def async_view(request):
        return HttpResponse()

    assert iscoroutinefunction(KernelMiddleware(async_view))
    assert not iscoroutinefunction(KernelMiddleware(lambda request: HttpResponse()))


def test_async_plugin_view__runs_as_its_plugin_with_a_traceparent():
    response = get("/api/toolbox/whoami-async/")

    assert response.json() == {"plugin": "toolbox"}
    assert TRACEPARENT.match(response.headers["traceparent"])


def test_async__an_incoming_traceparent_is_continued():
    response = get("/api/toolbox/trace/", traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")

    assert response.json()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def in_maintenance():
    maintenance.turn_on("Back soon")
    yield
    maintenance.turn_off()


def test_async_maintenance__anonymous_requests_get_the_503(in_maintenance):
    response = get("/api/toolbox/whoami-async/")

    assert response.status_code == 503
    assert response.json() == {"detail": "Back soon", "maintenance": True}
    assert TRACEPARENT.match(response.headers["traceparent"])


def test_async_maintenance__staff_get_through_by_session(in_maintenance):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client = AsyncClient()
    asyncio.run(client.aforce_login(staff))

    assert get("/api/toolbox/whoami-async/", client).status_code == 200


def test_async_maintenance__staff_get_through_by_token_and_others_do_not(in_maintenance):
    staff = User.objects.create_user("staff", is_staff=True)
    plain = User.objects.create_user("plain")

    allowed = get("/api/toolbox/whoami-async/", Authorization=f"Token {Token.objects.create(user=staff).key}")
    refused = get("/api/toolbox/whoami-async/", Authorization=f"Token {Token.objects.create(user=plain).key}")
    wrong = get("/api/toolbox/whoami-async/", Authorization="Token not-a-token")

    assert (allowed.status_code, refused.status_code, wrong.status_code) == (200, 503, 503)
