"""Settings of the demo site, read from the environment with django-environ.

Every value has a default fit for a laptop: SQLite in ``db.sqlite3`` beside
this project, DEBUG on. Set ``DATABASE_URL=postgres://...`` for PostgreSQL.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from tachycore.db import configure_sqlite

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
# A laptop (DEBUG on) may run on the public key below; anything else must set its own,
# since whoever knows the key can forge sessions, password-reset links and signed data.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set and DEBUG is off: set SECRET_KEY in the environment or in .env "
            "(make one with: python -c 'from django.core.management.utils import "
            "get_random_secret_key; print(get_random_secret_key())')"
        )
    SECRET_KEY = "demo-insecure-key-change-me-0123456789abcdefghijklmnop"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # API tokens (manage.py drf_create_token USER): a token costs a table lookup, a password
    # (Basic authentication) a deliberately slow hash on every request
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_q",
    "tachycore",
    "kv",
    "jobs",
    "plugins_admin",
    "demo",
    "demo.audit",
    "demo.notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # registers the process as a node, follows other processes, serves maintenance mode
    "tachycore.middleware.KernelMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "demo.wsgi.application"
ASGI_APPLICATION = "demo.asgi.application"

DATABASES = {
    "default": configure_sqlite(env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    # a browser's session (the admin's login) or an API token; no Basic authentication
    # (the session first, as in DRF's default: a request without credentials gets 403)
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        # DRF's TokenAuthentication, its users kept for TACHYCORE["API_TOKEN_CACHE_TTL"] (1 s)
        "tachycore.authentication.CachedTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON bodies only, through the parser of the kv and jobs APIs (400/413 with a JSON detail)
    "DEFAULT_PARSER_CLASSES": ["tachycore.parsers.JSONBodyParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# The OpenAPI schema at /api/schema/ (staff only, see demo/urls.py).
SPECTACULAR_SETTINGS = {
    "TITLE": "Plugin platform API",
    "VERSION": "0.1.0",
    # leave the kv API out of the schema while it answers 404 (KV["HTTP_ENABLED"] off, plugin disabled)
    "PREPROCESSING_HOOKS": ["kv.api.schema.hide_kv_api_when_off", "jobs.api.schema.hide_jobs_api_when_off"],
}

# The kernel's settings; each key can be overridden by TACHYCORE_<KEY> in the environment.
TACHYCORE = {
    "REGISTRY": "tachycore.registry.DatabaseRegistry",
}

# django.tasks on the job queue: `manage.py runjobs` runs the tasks.
TASKS = {"default": {"BACKEND": "jobs.backends.JobsBackend"}}

# django-q2 runs the periodic maintenance (its Schedule rows, such as the kv expiry cleanup)
# in `manage.py qcluster`, with its queue in this database (the ORM broker).
Q_CLUSTER = {
    "name": "tachybundle",
    "orm": "default",
    "workers": 2,  # maintenance tasks only: two workers are plenty on a 2-core machine
    "recycle": 500,
    "timeout": 300,  # the longest a task may run, a large cleanup backlog included
    "retry": 360,  # more than timeout: a task not acknowledged by then is run again
    "max_attempts": 3,
    "queue_limit": 10,
    "bulk": 1,
    "poll": 1.0,  # seconds between polls of an empty queue
    "catch_up": False,  # after downtime a schedule runs once, not once per missed interval
    "save_limit": 100,
}

# Errors reach the console whatever DEBUG says: Django's own console handler speaks only
# while DEBUG is on, so without these a 500 of a production server would be logged nowhere.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "tachycore": {"handlers": ["console"], "level": env.str("TACHYCORE_LOG_LEVEL", default="INFO")},
        # unhandled exceptions of views (a 500), with their traceback, on the server's stderr only
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        "kv.api": {"handlers": ["console"], "level": "WARNING"},
        "jobs.api": {"handlers": ["console"], "level": "WARNING"},
    },
}
