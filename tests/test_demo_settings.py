"""The demo's settings with DEBUG off: no start on the public SECRET_KEY, and errors logged."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo_process(args: list[str], **env_vars: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PYTEST") and key not in ("SECRET_KEY", "DEBUG")}
    env.update(DJANGO_SETTINGS_MODULE="demo.settings", PYTHONPATH=str(ROOT),
               DATABASE_URL="sqlite:///:memory:", **env_vars)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_debug_off_without_secret_key__manage_py_refuses_in_one_line():
    result = demo_process(["manage.py", "check"], DEBUG="false")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("manage.py: SECRET_KEY is not set and DEBUG is off")


def test_debug_off_without_secret_key__the_wsgi_application_does_not_load():
    result = demo_process(["-c", "import demo.wsgi"], DEBUG="false")

    assert result.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY is not set and DEBUG is off" in result.stderr


def test_debug_off_with_a_secret_key__the_site_starts_on_it():
    result = demo_process(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"],
        DEBUG="false", SECRET_KEY="a-key-of-this-site-only",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "a-key-of-this-site-only\n"


def test_debug_on_without_secret_key__the_laptop_default_applies():
    result = demo_process(
        ["-c", "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"],
        DEBUG="true",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("demo-insecure-key")


# a view that fails, served with DEBUG off: the client gets Django's plain 500 page, the
# server's stderr the traceback (Django's own console handler is silent without DEBUG)
FAILING_VIEW = """
import django
django.setup()
import demo.views
def broken(request):
    raise RuntimeError("the home page is broken")
demo.views.home = broken
from django.test import Client
response = Client(raise_request_exception=False).get("/")
print(response.status_code)
print("the home page is broken" in response.content.decode())
"""


def test_debug_off__an_unhandled_view_error_is_logged_on_stderr_with_its_traceback():
    result = demo_process(["-c", FAILING_VIEW], DEBUG="false", SECRET_KEY="k" * 50, ALLOWED_HOSTS="testserver")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["500", "False"]  # nothing of the error reaches the client
    assert "Internal Server Error: /" in result.stderr
    assert "RuntimeError: the home page is broken" in result.stderr


def test_debug_off__the_apis_loggers_reach_stderr():
    script = ("import django; django.setup(); import logging; "
              "logging.getLogger('kv.api').error('kv says'); logging.getLogger('jobs.api').error('jobs says')")

    result = demo_process(["-c", script], DEBUG="false", SECRET_KEY="k" * 50)

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["kv says", "jobs says"]
