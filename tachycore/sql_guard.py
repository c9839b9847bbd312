"""The SQL guard: each statement a plugin runs through Django checked against its grants.

``install`` (a ``connection_created`` receiver) puts :func:`guard` first among the
``execute_wrappers`` of every connection of every alias. For a statement run while a
plugin's code runs (``tachycore.context.current_plugin()``), the guard asks
``tachycore.sql_classifier`` what it does, then the grants:

- its own tables (its app's models, many-to-many tables included): ``storage:sql`` at the
  statement's access (READ for a SELECT, WRITE for INSERT/UPDATE/DELETE and locking reads,
  EXECUTE for DDL, ``COPY``, ``SET``, several statements, what does not parse);
- any other table: ``storage:sql:<table>`` (or ``storage:sql:*``) at that access, READ
  for the tables a writing statement only reads;
- a statement that names no table (``SELECT 1``, ``SET ROLE``): ``storage:sql`` at its access;
- transaction control (``BEGIN``, ``SAVEPOINT``...): nothing, Django runs it for every
  ``atomic`` block;
- the tables of ``TACHYCORE["READABLE_TABLES"]`` (sessions, users, tokens, permissions:
  what Django and DRF read to authenticate a request inside a plugin's view) at READ: nothing.

A refused statement is not sent: ``CapabilityDenied`` is raised before the database sees
it, so the plugin's transaction is as it was, to go on or roll back as the plugin decides.
The host site, built-in plugins and the statements kv and jobs run for a plugin (which
they check with their own capability: ``governance.builtin_statements``) pass unchecked.

A guardrail for plugins that cooperate, not a sandbox: code can reach the DB-API
connection (``connection.connection``) and run SQL the wrapper never sees.
"""

from __future__ import annotations

import functools
from typing import Any

from django.apps import apps

from . import governance
from .conf import tachycore_settings
from .context import current_plugin, in_builtin_statements
from .models import Access
from .sql_classifier import NONE, Statement, classify, sql_text

__all__ = ["guard", "install", "own_tables"]


def install(*, connection: Any, **kwargs: Any) -> None:
    """``connection_created``: make the guard the outermost wrapper of ``connection`` (once)."""
    if guard not in connection.execute_wrappers:
        connection.execute_wrappers.insert(0, guard)


def guard(execute: Any, sql: Any, params: Any, many: bool, context: dict[str, Any]) -> Any:
    plugin = current_plugin()
    if (plugin is not None and not governance.is_builtin_cursor(context["cursor"])
            and not in_builtin_statements() and not governance.trusted(plugin)):
        connection = context["connection"]
        statement = classify(sql_text(sql, connection), connection.vendor)
        if statement.access != NONE:
            _check(plugin, statement)
    return execute(sql, params, many, context)


def _check(plugin: str, statement: Statement) -> None:
    own = own_tables(plugin)
    readable = _readable(tuple(tachycore_settings.READABLE_TABLES))
    access = Access(statement.access)
    needs: dict[str, Access] = {}
    for table in statement.writes:
        _need(needs, _capability(table, own), access)
    for table in statement.reads:
        if _bare(table) not in readable:
            _need(needs, _capability(table, own), Access.READ)
    if not statement.tables:
        _need(needs, "storage:sql", access)
    for capability, level in needs.items():
        target = capability.removeprefix("storage:sql:") if capability != "storage:sql" else "own tables"
        governance.enforce(plugin, capability, level, action="sql", target=target, detail=statement.reason)


def _need(needs: dict[str, Access], capability: str, level: Access) -> None:
    if level > needs.get(capability, Access.NONE):
        needs[capability] = level


def _bare(table: str) -> str:
    """``public.notes_note`` and ``main.notes_note`` are ``notes_note``."""
    schema, _, name = table.rpartition(".")
    return name if schema in ("public", "main") else table


def _capability(table: str, own: frozenset[str]) -> str:
    bare = _bare(table)
    return "storage:sql" if bare in own else f"storage:sql:{bare}"


@functools.lru_cache(maxsize=256)
def own_tables(plugin: str) -> frozenset[str]:
    """The tables of ``plugin``'s app (its models and their many-to-many tables), lower case."""
    label = governance.app_label_of(plugin)
    if label is None:
        return frozenset()
    models = apps.get_app_config(label).get_models(include_auto_created=True)
    return frozenset(model._meta.db_table.lower() for model in models)


@functools.lru_cache(maxsize=8)
def _readable(tables: tuple[str, ...]) -> frozenset[str]:
    return frozenset(table.lower() for table in tables)
