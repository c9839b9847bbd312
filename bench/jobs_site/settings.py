"""Settings of the bench site (``bench/jobs.py`` starts every worker with them).

The demo's settings, plus the peers: django-tasks-db as the ``TASKS`` alias
``"db"``, django-q2 with four workers and every result kept (the bench counts
them), and procrastinate on PostgreSQL (it has no SQLite connector).
"""

from demo.settings import *  # noqa: F403
from demo.settings import DATABASES, INSTALLED_APPS, TASKS

DEBUG = False
ON_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")

INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db", "bench.jobs_site"]
if ON_POSTGRES:
    INSTALLED_APPS.append("procrastinate.contrib.django")

TASKS = {**TASKS, "db": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

# django-q2's defaults (poll 0.2 s, bulk 1), with four workers and every result kept:
# a finished task is a row in django_q_task, which the bench counts
Q_CLUSTER = {
    "name": "bench",
    "orm": "default",
    "workers": 4,
    "save_limit": 0,
    "timeout": 60,
    "retry": 120,
    "catch_up": False,
    "log_level": "WARNING",
}

# procrastinate finds its tasks in this module of each app
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = "procrastinate_tasks"

# the status line and the supervisor's heartbeats stay on, as in production; logs stay quiet
LOGGING = {"version": 1, "disable_existing_loggers": False}
