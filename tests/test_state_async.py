"""A watched state read from a coroutine never holds up the event loop for the database."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tachycore.state import WatchedState


class SlowState(WatchedState):
    """A state whose version read takes ``delay`` seconds (a slow or busy database)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay, self.version, self.copy = delay, 1, None
        self.readers: list[str] = []

    def _read_version(self):
        self.readers.append(threading.current_thread().name)
        time.sleep(self.delay)
        return self.version

    def _load(self, version):
        self.copy = self._version = version


@pytest.fixture
def always_check(settings):
    """Every refresh checks the database (the settings accessors follow ``settings``)."""
    settings.TACHYCORE = {**getattr(settings, "TACHYCORE", {}), "STATE_CHECK_INTERVAL": 0,
                          "RECONCILE_INTERVAL": 0}


def test_refresh_in_a_coroutine__returns_at_once_and_the_worker_thread_checks(always_check):
    state = SlowState(delay=0.3)
    state.refresh()  # the first read, outside any loop
    state.version = 2

    async def reader():
        started = time.monotonic()
        changed = state.refresh()
        took = time.monotonic() - started
        while state.copy != 2 and time.monotonic() - started < 5:
            await asyncio.sleep(0.01)
        return changed, took

    changed, took = asyncio.run(reader())

    assert changed is False  # the coroutine went on with its copy
    assert took < 0.1, f"refresh held the event loop for {took:.3f}s"
    assert state.copy == 2  # ... and the check on the worker thread brought the change
    assert state.readers[-1].startswith("tachycore-state")


def test_refresh_in_a_coroutine__many_readers_start_one_check(always_check):
    state = SlowState(delay=0.2)
    state.refresh()
    checks_before = len(state.readers)

    async def readers():
        for _ in range(50):
            state.refresh()
            await asyncio.sleep(0)
        await asyncio.sleep(0.5)

    asyncio.run(readers())

    assert len(state.readers) - checks_before <= 3  # one at a time, not one per reader


def test_refresh_in_a_coroutine__the_first_read_still_waits_for_the_state():
    state = SlowState(delay=0.05)

    async def reader():
        state.refresh()
        return state.copy

    assert asyncio.run(reader()) == 1  # no copy to go on with: it waits, once


def test_refresh_in_plain_code__reads_at_once(always_check):
    state = SlowState(delay=0.0)
    state.refresh()
    state.version = 2

    assert state.refresh() is True
    assert state.copy == 2
