"""How a process keeps its copy of shared state (plugin states, maintenance) up to date."""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from django.db import connections

from .conf import tachycore_settings
from .context import builtin_statements

_async_executor: concurrent.futures.ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _no_push() -> bool:
    return False


#: whether changes of other processes reach this one as messages now; the runtime, which
#: runs the listener, installs its own probe (``follow_push``) when it is imported
_push_live: Callable[[], bool] = _no_push


def follow_push(probe: Callable[[], bool]) -> None:
    """Tell the watched states how to learn whether sync messages arrive (the runtime's probe)."""
    global _push_live
    _push_live = probe


def check_interval() -> float:
    """How stale a copy may get before a reader checks the database again.

    While a cross-process sync listener is connected, changes arrive as
    messages and the check only repairs lost ones (``RECONCILE_INTERVAL``);
    otherwise readers poll one version row (``STATE_CHECK_INTERVAL``).
    """
    if _push_live():
        return tachycore_settings.RECONCILE_INTERVAL
    return tachycore_settings.STATE_CHECK_INTERVAL


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _in_async_task() -> bool:
    """Whether the caller is a coroutine of a running event loop (an async view, an ASGI
    middleware): a wait here would hold up every other request the loop serves."""
    try:
        return asyncio.current_task() is not None
    except RuntimeError:  # no loop running in this thread
        return False


def _run_and_close(fn, *args: Any) -> Any:
    try:
        return fn(*args)
    finally:
        connections.close_all()  # the worker thread outlives requests: hold no connection


_watched: weakref.WeakSet[WatchedState] = weakref.WeakSet()


def _reset_executor_after_fork() -> None:
    # locks held by another thread at fork time would stay held forever in the child
    global _async_executor, _executor_lock
    _async_executor, _executor_lock = None, threading.Lock()
    for state in list(_watched):
        state._lock = threading.RLock()
        state._pending = None  # a check of the parent's worker thread, which the child lacks


os.register_at_fork(after_in_child=_reset_executor_after_fork)


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _async_executor
    with _executor_lock:
        if _async_executor is None:
            _async_executor = concurrent.futures.ThreadPoolExecutor(1, "tachycore-state")
        return _async_executor


def run_outside_event_loop(fn, *args: Any) -> Any:
    """Call ``fn`` here, or on a worker thread when this thread runs an event loop
    (the ORM refuses to run on one)."""
    if not _in_event_loop():
        return fn(*args)
    return _executor().submit(_run_and_close, fn, *args).result()


class WatchedState(abc.ABC):
    """A process-local copy of database state, tagged with the version it was read at."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._version: Any = None
        #: when (``time.monotonic()``) the next reader checks the version again
        self._due = 0.0
        #: a check a coroutine asked for, running on the worker thread
        self._pending: concurrent.futures.Future[bool] | None = None
        _watched.add(self)

    @abc.abstractmethod
    def _read_version(self) -> Any:
        """The current version in the database (cheap: one row)."""

    @abc.abstractmethod
    def _load(self, version: Any) -> None:
        """Read the full state and make it this process's copy."""

    def _database(self) -> str:
        """The database alias the state is read from."""
        return "default"

    def _distrust_if_uncommitted(self) -> None:
        # read inside a transaction, the copy may hold changes that roll back: do not let
        # its version stand for the database's, so the next reader checks again
        if connections[self._database()].in_atomic_block:
            self._version = None

    def refresh(self, force: bool = False) -> bool:
        """Re-read the state if its version moved; return whether it did.

        Without ``force`` the version is read at most every :func:`check_interval`. Called
        from a coroutine (an async view or middleware), it never waits for the database once
        the state was read: the check runs on a worker thread and the next reader sees it.
        """
        if not force and self._version is not None and time.monotonic() < self._due:
            return False
        if not force and self._version is not None and _in_async_task():
            # a coroutine does not wait for the database: it goes on with the copy it has
            # (one check old), and a worker thread checks for the next reader
            self._check_soon()
            return False
        if self._lock._is_owned():  # type: ignore[attr-defined]
            # this thread holds the state (a plugin operation's hook asking): a worker thread
            # would wait for the lock this thread keeps until the operation ends
            return self._check()
        return run_outside_event_loop(self._check)

    def _check_soon(self) -> None:
        with self._lock:
            if self._pending is not None and not self._pending.done():
                return  # one check at a time is enough
            self._pending = _executor().submit(_run_and_close, self._check)

    def _check(self) -> bool:
        with self._lock, builtin_statements():  # the kernel's own, if a plugin's code asked
            try:
                version = self._read_version()
                if version == self._version:
                    return False
                self._load(version)
                self._distrust_if_uncommitted()
            finally:
                self._checked()
            return True

    def reread(self) -> None:
        """Read the full state now, whatever the version."""
        with self._lock, builtin_statements():
            run_outside_event_loop(lambda: self._load(self._read_version()))
            self._distrust_if_uncommitted()
            self._checked()

    def forget(self) -> None:
        with self._lock:
            self._version, self._due = None, 0.0

    def _checked(self) -> None:
        # the interval is worked out once per check, not by every reader (the hot path)
        self._due = time.monotonic() + check_interval()

    def check_soon(self) -> None:
        """Have the next reader check the version (the sync listener went quiet: the interval
        it allowed no longer holds)."""
        self._due = 0.0
