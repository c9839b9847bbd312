"""The environment the benchmarks run the site in, set before Django loads it."""

from __future__ import annotations

import os
import tempfile


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
