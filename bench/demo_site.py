"""The environment the benchmarks run the site in, set before Django loads it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit


def debug_off() -> None:
    """``DEBUG`` off (as in production), with a key of its own: demo/settings.py refuses to
    start on its public one then, and a benchmark's site keeps no secrets."""
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("SECRET_KEY", "bench-only-" + "k" * 40)


def use_demo_site() -> None:
    """The demo's settings, on ``DATABASE_URL`` or else a scratch SQLite file, ``DEBUG`` off."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    if "DATABASE_URL" not in os.environ:
        os.environ["DATABASE_URL"] = f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    debug_off()


def scratch_database(keep: bool, suffix: str, folder: str) -> Callable[[], None]:
    """Point ``DATABASE_URL`` at a fresh scratch database: a SQLite file in ``folder`` when
    none is set, or on PostgreSQL the named database with ``_<suffix>`` appended, made anew
    (and dropped by the function returned, unless ``keep``)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
        return lambda: None
    if not url.startswith(("postgres://", "postgresql://")):
        return lambda: None
    import psycopg

    parts = urlsplit(url)
    name = f"{parts.path.lstrip('/')}_{suffix}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))

    def drop() -> None:
        if keep:
            return
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return drop
