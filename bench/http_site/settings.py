"""Settings of the bench site: the demo's (``DEBUG`` off, Django's default database
configuration from ``DATABASE_URL``), both APIs on, logs quiet.

The per-user throttle scopes are off: at their default rates (600 reads, 300 enqueues a
minute) one token would be refused after a few hundred requests; the ``anon`` scope, which
counts failed authentications per IP, stays on, so each request still checks it.
"""

from demo.settings import *  # noqa: F403
from demo.settings import INSTALLED_APPS

DEBUG = False
INSTALLED_APPS = [*INSTALLED_APPS, "bench.http_site"]
ROOT_URLCONF = "bench.http_site.urls"

KV = {"HTTP_ENABLED": True, "THROTTLE_RATES": {"anon": "60/min", "read": None, "write": None}}
JOBS = {"HTTP_ENABLED": True,
        "THROTTLE_RATES": {"anon": "60/min", "enqueue": None, "read": None, "manage": None}}

# the status line and the supervisor's heartbeats stay on, as in production; logs stay quiet
LOGGING = {"version": 1, "disable_existing_loggers": False}
