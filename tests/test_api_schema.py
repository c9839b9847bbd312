"""The APIs answer as their OpenAPI schema says: schemathesis generates requests from the
site's own ``/api/schema/`` (kv, jobs and the demo's plugins, all served) and sends them to a
live server as a staff user holding every kv and jobs model permission.

For each operation it sends valid and invalid requests and checks every answer: no 5xx, a
status code the schema documents, a JSON body where the schema says JSON and of the
documented shape, invalid input refused with a 4xx, and the same request without the
session or with a wrong one refused. The number of examples is bounded so the whole test
stays well under a minute and a half on a busy two-core machine.

How: pytest-django's ``live_server`` (a server thread in this process, so the ``settings``
fixture reaches it) and schemathesis' Python API, one Hypothesis test
per operation and mode. Not ``schemathesis.pytest.from_fixture``: it reads
``request.node._nodeid``, which pytest 9.2 no longer has. ``derandomize``: every run sends
the same requests, so a failure reproduces; raise ``EXAMPLES`` and drop ``derandomize`` to
search further by hand (150 random examples per operation found nothing more on either
database).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
from django.contrib.auth.models import Permission
from django.test import Client
from schemathesis import APIOperation, GenerationMode

from tachycore.manager import plugin_manager

pytestmark = pytest.mark.django_db(transaction=True)

#: generated requests per operation and generation mode (valid, invalid); about 20 operations
EXAMPLES = 20

#: the paths the test must find in the schema, so that it cannot pass on an empty one
SERVED = {"/api/kv/keys/", "/api/kv/keys/{key}/", "/api/kv/keys/{key}/hash/", "/api/jobs/",
          "/api/jobs/{id}/", "/api/jobs/{id}/requeue/", "/api/jobs/stats/", "/api/notes/", "/api/audit/"}


@dataclass(frozen=True)
class StaffSession:
    """A signed-in session and the CSRF token DRF asks of a session for unsafe methods."""

    session_id: str
    csrf: str


def session_auth(session: StaffSession) -> type:
    """A schemathesis auth provider that signs every generated request in with ``session``:
    its checks then also send each request without it, and with a wrong one."""

    class SessionAuth:
        def get(self, case: schemathesis.Case, context: schemathesis.AuthContext) -> StaffSession:
            return session

        def set(self, case: schemathesis.Case, data: StaffSession, context: schemathesis.AuthContext) -> None:
            case.cookies = {**(case.cookies or {}), "sessionid": data.session_id, "csrftoken": data.csrf}
            case.headers = {**(case.headers or {}), "X-CSRFToken": data.csrf}

    return SessionAuth


@pytest.fixture
def staff_session(django_user_model) -> StaffSession:
    """A staff user with every kv and jobs model permission, not a superuser."""
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label__in=["kv", "jobs"]))
    client = Client()
    client.force_login(user)
    # a 32-character secret, as Django's CSRF cookie holds
    return StaffSession(client.cookies["sessionid"].value, secrets.token_hex(16))


@pytest.fixture
def api_schema(live_server, settings, staff_session) -> schemathesis.BaseSchema:
    """The live schema, with the kv and jobs APIs and the demo's plugins served; every
    generated request carries the staff session."""
    # throttles off: this test checks the schema, not the throttles (tests of their own);
    # hundreds of requests a minute would otherwise be answered 429
    settings.KV = {"HTTP_ENABLED": True, "THROTTLE_RATES": dict.fromkeys(["anon", "read", "write"])}
    settings.JOBS = {"HTTP_ENABLED": True,
                     "THROTTLE_RATES": dict.fromkeys(["anon", "enqueue", "read", "manage"])}
    plugin_manager.enable("notes")  # and audit, which it depends on
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json",
                                           cookies={"sessionid": staff_session.session_id}, timeout=30)
    schema.auth()(session_auth(staff_session))
    return schema


def exercise(operation: APIOperation, mode: GenerationMode) -> None:
    """Send ``EXAMPLES`` generated requests of ``mode`` to ``operation`` and check each answer."""

    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    def answered_as_documented(case: schemathesis.Case) -> None:
        case.call_and_validate(timeout=30)

    answered_as_documented()


def test_api__answers_as_its_schema_says(api_schema):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {operation.path for operation in operations} >= SERVED
    failures = []
    for operation in operations:
        # invalid requests where a query string or a body can be wrong (a path parameter of
        # ours is any text, or a job id whose malformed forms tests/test_jobs_api.py sends)
        modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if operation.query or operation.body else [
            GenerationMode.POSITIVE]
        for mode in modes:
            try:
                exercise(operation, mode)
            except (Exception, BaseExceptionGroup) as failure:  # report every operation's failures
                failures.append(f"{operation.label} ({mode.value}): {failure}")
    assert not failures, "\n\n".join(failures)
