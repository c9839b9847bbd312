"""The demo's APIs take an API token or the admin's session, not a password per request."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tachycore.manager import plugin_manager

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    plugin_manager.enable("notes")
    return User.objects.create_user("ada", password="pw", is_staff=True)


def test_token__a_token_from_drf_create_token_opens_the_api(client, staff, capsys):
    call_command("drf_create_token", "ada")
    token = Token.objects.get(user=staff).key
    assert token in capsys.readouterr().out

    response = client.get("/api/notes/", HTTP_AUTHORIZATION=f"Token {token}")

    assert response.status_code == 200


def test_token__a_wrong_token_is_refused_with_a_json_detail(client, staff):
    response = client.get("/api/notes/", HTTP_AUTHORIZATION="Token not-a-token")

    assert response.status_code == 403 and response.json()["detail"] == "Invalid token."


def test_basic__a_password_is_not_taken(client, staff):
    credentials = base64.b64encode(b"ada:pw").decode()

    response = client.post("/api/notes/", {"title": "t", "body": "b"}, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Basic {credentials}")

    assert response.status_code == 403  # as anonymous: the password was not even checked


def test_session__the_admin_login_opens_the_api(client, staff):
    client.force_login(staff)

    assert client.get("/api/notes/").status_code == 200
