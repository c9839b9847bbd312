#!/usr/bin/env python
"""Django's command-line utility for the demo site.

A database that is not there yet (a ``DATABASE_URL`` naming a PostgreSQL database
nobody created, an SQLite file in a missing directory) stops the command with one
line saying how to create it, and exit status 1, instead of a page of traceback; so do
settings that refuse to load (``SECRET_KEY`` unset while ``DEBUG`` is off).
"""

import os
import re
import shlex
import sys
from pathlib import Path

#: PostgreSQL's sqlstate for "database does not exist" (psycopg's InvalidCatalogName);
#: a failed connection carries no sqlstate, only libpq's message, so that is read too
INVALID_CATALOG_NAME = "3D000"
MISSING_POSTGRES_DATABASE = re.compile(r'database "(?P<name>[^"]+)" does not exist')


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as error:
        if settings.configured:
            raise  # a mistake elsewhere: its traceback says where
        sys.exit(f"manage.py: {error}")  # the settings module itself refused to load
    except OperationalError as error:
        hint = missing_database(error)
        if hint is None:
            raise
        sys.exit(f"manage.py: {hint}")  # to stderr, exit status 1


def missing_database(error: BaseException) -> str | None:
    """How to create the database ``error`` says is missing, or ``None`` for other errors."""
    from django.db import connections

    cause = error.__cause__ or error
    for alias in connections:
        database = connections[alias].settings_dict
        engine = database.get("ENGINE", "")
        if "postgresql" in engine:
            hint = missing_postgres_database(database, cause)
        elif engine.endswith("sqlite3"):
            hint = missing_sqlite_directory(database, cause)
        else:
            hint = None
        if hint:
            return hint
    return None


def missing_postgres_database(database: dict, cause: BaseException) -> str | None:
    found = MISSING_POSTGRES_DATABASE.search(str(cause))
    if getattr(cause, "sqlstate", None) != INVALID_CATALOG_NAME and found is None:
        return None
    if found is not None and found["name"] != database.get("NAME"):
        return None  # another alias's database
    name = database["NAME"]
    server = ":".join(str(part) for part in (database.get("HOST"), database.get("PORT")) if part)
    command = ["createdb"]
    for flag, key in (("-h", "HOST"), ("-p", "PORT"), ("-U", "USER")):
        if database.get(key):
            command += [flag, str(database[key])]
    command.append(name)
    return (f'the PostgreSQL database "{name}" does not exist{f" on {server}" if server else ""}; '
            f"create it with: {shlex.join(command)}")


def missing_sqlite_directory(database: dict, cause: BaseException) -> str | None:
    name = str(database.get("NAME") or "")
    if "unable to open database file" not in str(cause) or name.startswith(("file:", ":memory:")):
        return None
    directory = Path(name).parent
    if directory.is_dir():
        return None
    return (f"cannot open the SQLite database {name}: its directory {directory} does not exist; "
            f"create it with: mkdir -p {shlex.quote(str(directory))}")


if __name__ == "__main__":
    main()
