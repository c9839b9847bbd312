"""Leases as a dispatcher knows them locally, and the buffer of claimed jobs waiting for a worker.

The database's ``locked_until`` says when another worker may take a job over. Here each
claim also keeps a deadline on this process's monotonic clock, counted from *before* the
statement that claimed or renewed it. A process that was stopped (SIGSTOP, a paused VM, a
host cut off from the database) sees on waking that its time has passed before it has said
a word to the database, so it starts nothing it may have lost. A job starts only while its
deadline is more than a margin away: the margin covers the moment between the check and the
start, and the clocks of two hosts that disagree (``locked_until`` is this host's wall clock,
read by another host's).

A claim is a job id *and* its attempt: a job this dispatcher lost and claimed again is a new
claim, and the old one must not start under the new one's lease.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from .models import Job

__all__ = ["ClaimBuffer", "Leases", "claim_of"]

Claim = tuple[int, int]  # (job id, attempt)


def claim_of(job: Job) -> Claim:
    """The claim ``job`` was handed out under."""
    return (job.id, job.attempts)


class Leases:
    """The deadline of every claim a dispatcher holds; read by the worker threads, changed by
    the main loop (which alone talks to the database about leases).

    ``margin`` defaults to a third of ``duration``: leases are renewed every third of it, so
    a healthy dispatcher always has more than that left.
    """

    def __init__(self, duration: float, margin: float | None = None) -> None:
        self.duration = duration
        self.margin = duration / 3 if margin is None else margin
        self._deadlines: dict[Claim, float] = {}
        # False from a failed renewal to the next good one: no job starts meanwhile
        self._confirmed = True
        self._changed = threading.Condition()

    def claimed(self, claims: Iterable[Claim], since: float) -> None:
        """The database gave these claims at monotonic time ``since`` (taken before the claim)."""
        with self._changed:
            for claim in claims:
                self._deadlines[claim] = since + self.duration

    def renewed(self, claims: set[Claim], since: float) -> list[Claim]:
        """The database renewed ``claims``, all it still holds for this dispatcher, at ``since``;
        return the claims held here that it did not renew: they are lost."""
        with self._changed:
            lost = [claim for claim in self._deadlines if claim not in claims]
            for claim in lost:
                del self._deadlines[claim]
            for claim in claims & self._deadlines.keys():
                self._deadlines[claim] = since + self.duration
            self._confirmed = True
            self._changed.notify_all()
        return lost

    def unconfirmed(self) -> bool:
        """A renewal failed: stop starting jobs until one succeeds. True if this is news."""
        with self._changed:
            news, self._confirmed = self._confirmed, False
        return news

    def forget(self, claim: Claim) -> None:
        with self._changed:
            self._deadlines.pop(claim, None)

    def expired(self, claim: Claim, now: float | None = None) -> bool:
        """Whether ``claim`` may have run out (or was lost): it must not start."""
        deadline = self._deadlines.get(claim)
        return deadline is None or deadline - self.margin <= (time.monotonic() if now is None else now)

    def wait_startable(self, claim: Claim) -> bool:
        """True when ``claim`` may start now; False when it must not start at all. While a
        renewal failed and the lease has time left, wait for the next renewal."""
        with self._changed:
            while True:
                now = time.monotonic()
                if self.expired(claim, now):
                    return False
                if self._confirmed:
                    return True
                self._changed.wait(self._deadlines[claim] - self.margin - now)


class ClaimBuffer:
    """Claimed jobs waiting for a worker thread, in the order they were claimed; the main loop
    can take back those it may no longer start (a plain queue cannot give them back)."""

    def __init__(self) -> None:
        self._items: deque[Job | None] = deque()
        self._added = threading.Condition()

    def put(self, job: Job | None) -> None:
        """Add ``job``; ``None`` tells the worker that takes it to stop."""
        with self._added:
            self._items.append(job)
            self._added.notify()

    def take(self) -> Job | None:
        """The oldest job (or ``None``, stop), waiting for one."""
        with self._added:
            while not self._items:
                self._added.wait()
            return self._items.popleft()

    def take_back(self, which: Callable[[Job], bool]) -> list[Job]:
        """Remove and return the jobs ``which`` selects."""
        taken: list[Job] = []
        kept: deque[Job | None] = deque()
        with self._added:
            for item in self._items:
                if item is not None and which(item):
                    taken.append(item)
                else:
                    kept.append(item)
            self._items = kept
        return taken
