"""The demo's manage.py: a database that is not there yet is one line saying how to create it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent


def manage_py(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}
    env.update(DJANGO_SETTINGS_MODULE="demo.settings", DATABASE_URL=database_url, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def missing_postgres_url() -> str:
    """The PostgreSQL server of this run, with a database name nobody created."""
    server = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(server._replace(path=f"/tachy_missing_{os.getpid()}"))


@pytest.mark.postgres
def test_manage_py__missing_postgres_database_is_one_line_with_the_createdb_command():
    url = missing_postgres_url()
    server = urlsplit(url)

    result = manage_py(url, "migrate", "--noinput")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert f'database "tachy_missing_{os.getpid()}" does not exist' in result.stderr
    assert f"createdb -h {server.hostname}" in result.stderr
    assert result.stderr.rstrip().endswith(f"-U {server.username} tachy_missing_{os.getpid()}")


def test_manage_py__missing_sqlite_directory_is_one_line_with_the_mkdir_command(tmp_path):
    directory = tmp_path / "not" / "there"

    result = manage_py(f"sqlite:///{directory / 'db.sqlite3'}", "migrate", "--noinput")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (f"manage.py: cannot open the SQLite database {directory / 'db.sqlite3'}: "
                             f"its directory {directory} does not exist; create it with: "
                             f"mkdir -p {directory}\n")


def test_manage_py__other_database_errors_keep_their_traceback(tmp_path):
    not_a_database = tmp_path / "db.sqlite3"
    not_a_database.write_text("this is not an SQLite file\n" * 100)

    result = manage_py(f"sqlite:///{not_a_database}", "migrate", "--noinput")

    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "manage.py:" not in result.stderr
