"""Who is calling: the plugin the code running now belongs to.

The kernel sets it around every entry into a plugin (its URL views, its job handlers, its
signal receivers connected with ``Plugin.connect``, its services, its lifecycle hooks); the
governance checks and the audit trail read it. It lives in a ``contextvars.ContextVar``, so it follows
``await`` in async views and stays apart between threads.

A thread started with ``threading.Thread`` begins with an empty context: code it runs is
the host site's (``None``), whatever plugin started it. ``tachycore.context.Thread`` runs in
the context of the code that created it instead. This is bookkeeping for cooperative
plugins, not a sandbox: a plugin can start a plain thread or call ``acting_as`` itself.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Thread", "acting_as", "builtin_statements", "current_plugin", "in_builtin_statements"]

_plugin: contextvars.ContextVar[str | None] = contextvars.ContextVar("tachycore_plugin", default=None)

#: ``current_plugin()``: the name of the plugin whose code runs now; ``None`` for the host
#: site. The context variable's own ``get``: as cheap as a call gets, for the store's hot paths.
current_plugin: Callable[[], str | None] = _plugin.get


class acting_as:  # lower case: used like a function, ``with acting_as("notes"):``
    """Run the block as plugin ``name`` (``None``: as the host site), then restore the caller's.

    A class rather than a generator: the kernel enters one on every call into a plugin (a
    service call, a signal receiver), and a ``@contextmanager`` generator costs about three
    times as much.
    """

    __slots__ = ("_name", "_token")

    def __init__(self, name: str | None) -> None:
        self._name = name

    def __enter__(self) -> None:
        self._token = _plugin.set(self._name)

    def __exit__(self, *exc_info: object) -> None:
        _plugin.reset(self._token)


#: set while the kernel or a built-in plugin (kv, jobs) runs its own statements inside a
#: plugin's code (a state check, a sync message, an enqueue the plugin asked for): the SQL
#: guard leaves them, the built-in having checked its own capability
_builtin = contextvars.ContextVar("tachycore_builtin_statements", default=False)


class builtin_statements:  # lower case: used like a function, ``with builtin_statements():``
    """Run the block's SQL as the kernel's or a built-in's own (not checked by the SQL guard).

    A class rather than a generator, as ``acting_as``: every enqueue enters one."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = _builtin.set(True)

    def __exit__(self, *exc_info: object) -> None:
        _builtin.reset(self._token)


#: whether the SQL running now is the kernel's or a built-in's own (``builtin_statements``)
in_builtin_statements: Callable[[], bool] = _builtin.get


class Thread(threading.Thread):
    """A ``threading.Thread`` whose ``run()`` sees the context of the code that created it:
    the same current plugin (and any other context variable, such as the trace)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._creator_context = contextvars.copy_context()

    def run(self) -> None:
        self._creator_context.run(super().run)
