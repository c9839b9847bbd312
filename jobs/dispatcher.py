"""``Dispatcher``: claims due jobs in batches and runs them on a pool of threads.

One main loop does every database write of the dispatcher: it claims (one
statement per batch), hands jobs to ``WORKERS`` threads, writes the outcomes they
report (one statement for a batch of completed jobs), renews the leases of every
job it holds (one statement), and returns jobs whose worker died elsewhere to the
queue. Worker threads only run handlers, and only while the job's lease is still this
dispatcher's (``jobs.leases``). See docs/jobs.md.

Over 300 lines on purpose: the loop, the worker threads and the shutdown all read
and change the claims in hand (``_held``, ``_running``, ``_done``, the buffer) under
one set of rules (who writes, when a claim is forgotten, when one may start); split
apart, each part would reach into the others' state. What needs none of it is out:
the lease deadlines and the buffer in ``jobs.leases``, running one job in
``jobs.execution``. The SQL is in ``jobs.sql``, the plugin gating in ``jobs.gating``,
the local lease deadlines and the buffer of claimed jobs in ``jobs.leases``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.utils import timezone

from .conf import jobs_settings
from .errors import JobsDisabled
from .execution import RETURNED, Outcome, check_connections, lost_connection, start
from .gating import blocked_apps, blocked_topics, describe_held, held_by_plugin
from .leases import ClaimBuffer, Leases, claim_of
from .models import Job, JobStatus, new_job
from .signals import job_finished
from .sql import CLAIMED_COLUMNS, Statements, statements_for
from .wakeup import CommitWatcher, Listener, wakeup_for

logger = logging.getLogger("jobs.dispatcher")

__all__ = ["Counters", "Dispatcher"]

#: the longest an outcome waits in the dispatcher for others to be written with it (seconds);
#: until it is written its job is still ``processing`` under this dispatcher's lease, and a
#: dispatcher that dies meanwhile leaves it to run again when the lease ends (at least once)
FINISH_DELAY = 0.02


@dataclasses.dataclass
class Counters:
    """What a dispatcher did since it started."""

    completed: int = 0
    failed: int = 0
    retried: int = 0
    #: outcomes not written because another worker owned the job by then
    lost: int = 0
    recovered: int = 0

    @property
    def processed(self) -> int:
        return self.completed + self.failed + self.retried


class Dispatcher:
    """Runs jobs until :meth:`stop` (or, with ``burst``, until nothing is due).

    Every argument defaults to its ``JOBS`` setting. ``topics`` limits the topics
    (and task paths) this dispatcher takes; without it, it takes every topic with
    a handler in this process and every ``django.tasks`` task of a ``JobsBackend``,
    except those of disabled plugins.
    """

    def __init__(self, *, workers: int | None = None, topics: Sequence[str] | None = None,
                 batch_size: int | None = None, poll_interval: float | None = None,
                 lock_duration: float | None = None, shutdown_timeout: float | None = None,
                 burst: bool = False, name: str | None = None, using: str | None = None) -> None:
        from . import get_job_store

        store = get_job_store()
        if store is None:
            raise JobsDisabled("no dispatcher can run: jobs is disabled (JOBS['DISABLED']) or not installed")
        self.store = store
        self.using = using or self.store.using
        self.workers = workers or jobs_settings.WORKERS
        self.topics = list(topics) if topics else None
        self.batch_size = batch_size or jobs_settings.BATCH_SIZE
        self.poll_interval = poll_interval or jobs_settings.POLL_INTERVAL
        self.lock_duration = lock_duration or jobs_settings.LOCK_DURATION
        self.shutdown_timeout = jobs_settings.SHUTDOWN_TIMEOUT if shutdown_timeout is None else shutdown_timeout
        self.burst = burst
        self.name = name or _default_name()
        self.counters = Counters()
        # claimed jobs wait here for a worker; workers put outcomes in _done
        self._todo = ClaimBuffer()
        self._leases = Leases(self.lock_duration)
        self._done: deque[Outcome] = deque()
        self._done_since = 0.0  # monotonic time of the first outcome in _done
        self._done_lock = threading.Lock()  # a worker's append and its look at _done
        self._running: dict[int, Job] = {}  # started, not finished: job id -> job
        self._held: dict[int, Job] = {}  # claimed and not yet written back: job id -> job
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: Listener | CommitWatcher | None = None
        self._lock = threading.Lock()

    # -- control -------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming; :meth:`run` lets running jobs finish (up to ``shutdown_timeout``),
        returns the rest to the queue, and returns."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> Counters:
        """Run in this thread until stopped; return the counters."""
        sql = statements_for(self.using)
        self._warn_blocked_topics()
        self._start_threads()
        self.store.add_local_waker(self.wake)
        try:
            self._loop(sql)
            self._shut_down(sql)
        finally:
            self.store.remove_local_waker(self.wake)
            self._stop_threads()
            connections[self.using].close()
        return self.counters

    def _loop(self, sql: Statements) -> None:
        next_extend = time.monotonic() + self.lock_duration / 3
        next_recover = time.monotonic()  # at once: jobs of a dispatcher that died before this one started
        errors = 0
        while not self.stopping:
            self._wake.clear()
            try:
                now = time.monotonic()
                # the leases first: nothing below may keep them from being renewed in time
                if now >= next_extend:
                    self._renew(sql)
                    next_extend = now + self.lock_duration / 3
                self._drop_expired(sql)
                if self._outcomes_due():
                    self._flush(sql)
                if now >= next_recover:
                    self._recover(sql)
                    next_recover = now + min(self.lock_duration, 30.0)
                claimed, full = self._claim(sql)
                errors = 0
            except DatabaseError as e:
                errors += 1
                self._database_error(e, errors)
                continue
            if full:
                continue  # more may be due: claim again at once
            if self.burst and not claimed and not self._held and not self._done:
                return
            self._wake.wait(self._idle_wait())

    def _idle_wait(self) -> float:
        if self._done:  # outcomes wait for more: no longer than FINISH_DELAY
            return max(0.0, min(self._done_since + FINISH_DELAY - time.monotonic(), 1.0))
        if self._held:
            return min(self.lock_duration / 3, 1.0)  # a worker will wake us when it finishes
        wait = self.poll_interval * random.uniform(0.8, 1.2)
        return min(wait, 0.05) if self.burst else wait

    def _database_error(self, error: DatabaseError, errors: int) -> None:
        logger.warning("jobs dispatcher: database error: %s", error)
        _record_error(f"jobs dispatcher: database error: {type(error).__name__}: {error}")
        connections[self.using].close()
        self._stopping.wait(min(0.1 * 2 ** errors, 5.0))

    # -- claiming ------------------------------------------------------------------------

    def _warn_blocked_topics(self) -> None:
        """Name, once, the handler topics this dispatcher skips because their plugin is not
        enabled: otherwise their jobs would wait without a word."""
        for plugin, topics in blocked_topics(self.topics).items():
            logger.warning("jobs: the jobs of %s wait until plugin %r is enabled (manage.py pm enable %s)",
                           ", ".join(topics), plugin, plugin)

    def runnable(self) -> tuple[list[str], list[str], list[str], list[str]]:
        """(handler topics, task backends, task topics, blocked prefixes) this dispatcher takes now."""
        from .backends import jobs_task_backends
        from .handlers import handlers

        disabled_labels, blocked = blocked_apps()
        topics = [entry.topic for entry in handlers if entry.app_label not in disabled_labels]
        backends = jobs_task_backends()
        task_topics: list[str] = []
        if self.topics is not None:
            task_topics = [topic for topic in self.topics if topic not in handlers]
            topics = [topic for topic in topics if topic in self.topics]
            if not task_topics:
                backends = []  # only handler topics were named: no task at all
        return topics, backends, task_topics, blocked

    def _claim(self, sql: Statements) -> tuple[int, bool]:
        capacity = self.workers + self.batch_size - len(self._held)
        if capacity <= 0:
            return 0, False
        limit = min(capacity, self.batch_size)
        topics, backends, task_topics, blocked = self.runnable()
        if not topics and not backends:
            return 0, False
        since = time.monotonic()  # before the statement: the lease may start any moment after
        now = timezone.now()
        rows = sql.claim(self.name, now, now + timedelta(seconds=self.lock_duration), limit,
                            topics, backends, blocked, task_topics)
        jobs = [self._job(sql, row) for row in rows]
        for job in jobs:
            self._held[job.id] = job
        self._leases.claimed(map(claim_of, jobs), since)
        self._hand_out(sql, jobs)
        return len(rows), len(rows) == limit

    def _hand_out(self, sql: Statements, jobs: list[Job]) -> None:
        """Give the claimed jobs to the workers, unless the claim took so long that their
        lease may have run out already."""
        late = []
        for job in jobs:
            if self._leases.expired(claim_of(job)):
                late.append(job)
            else:
                self._todo.put(job)
        if late:
            self._say(f"jobs: {len(late)} job(s) claimed too late to start within their lease; back in the queue")
            self._release(sql, late, started=False)

    def _job(self, sql: Statements, row: tuple) -> Job:
        values = dict(zip(CLAIMED_COLUMNS, row, strict=True))
        for key in ("payload", "workers", "errors", "trace_context"):
            values[key] = sql.read_json(values[key])
        for key in ("run_at", "created", "started_at", "attempted_at"):
            values[key] = sql.read_dt(values[key])
        job = new_job(status=JobStatus.PROCESSING, locked_by=self.name, **values)
        job._state.adding = False
        job._state.db = self.using
        return job

    # -- finishing -----------------------------------------------------------------------

    def _outcomes_due(self) -> bool:
        """Whether to write the outcomes in hand now: as many as a claim takes, or one for
        every job held (nothing else will finish before the next claim), or the first of
        them has waited ``FINISH_DELAY``. Written together, a batch of completed jobs is one
        statement, and the claim that follows takes as many jobs in one statement."""
        done = len(self._done)
        if not done:
            return False
        return (done >= self.batch_size or done >= len(self._held)
                or time.monotonic() >= self._done_since + FINISH_DELAY)

    def _flush(self, sql: Statements) -> None:
        """Write the outcomes the workers reported: completed ones in one statement.

        A lost connection keeps them for the next round. An outcome the database refuses
        for its data (it never will accept it) is dropped and reported, so that one bad
        outcome cannot stop the dispatcher; its job comes back when its lease runs out.
        """
        if not self._done:
            return
        outcomes = []
        while self._done:
            outcomes.append(self._done.popleft())
        try:
            self._write(sql, outcomes)
        except (OperationalError, InterfaceError):
            self._done.extendleft(reversed(outcomes))  # written on the next round
            raise
        except DatabaseError:
            for outcome in outcomes:  # one at a time, to find the one refused
                try:
                    self._write(sql, [outcome])
                except (OperationalError, InterfaceError):
                    self._done.append(outcome)
                    raise
                except DatabaseError as e:
                    self._forget(outcome.job)
                    logger.error("jobs: the outcome of job %s was refused by the database: %s", outcome.job.id, e)
                    _record_error(f"outcome of job {outcome.job.id} not written: {type(e).__name__}: {e}")

    def _write(self, sql: Statements, outcomes: list[Outcome]) -> None:
        now = timezone.now()
        self._give_back(sql, now, [o.job for o in outcomes if o.status == RETURNED])
        outcomes = [o for o in outcomes if o.status != RETURNED]
        completed = [o for o in outcomes if o.status == JobStatus.COMPLETED]
        written = sql.complete(self.name, now, [(o.job.id, o.result_json, o.job.attempts) for o in completed])
        for outcome in outcomes:
            job = outcome.job
            if outcome.status != JobStatus.COMPLETED:
                assert outcome.error is not None, "an outcome that is not completed carries its error"
                ok = sql.fail(self.name, now, job.id, outcome.error, outcome.retry_at, attempt=job.attempts)
            else:
                ok = job.id in written
            self._forget(job)
            if not ok:
                self.counters.lost += 1
                logger.warning("job %s (%s): its lease was lost; this outcome (%s) is not written",
                               job.id, job.topic, outcome.status)
                continue
            self._count(outcome)
            job.status = outcome.status
            job.finished_at = now if outcome.status != JobStatus.PENDING else None
            try:
                self._finished(outcome)
            except Exception as e:  # a receiver's error: the outcome is written already
                logger.exception("jobs: a job_finished receiver failed for job %s", job.id)
                _record_error(f"job_finished receiver failed for job {job.id}: {type(e).__name__}: {e}")

    def _give_back(self, sql: Statements, now: datetime, jobs: list[Job]) -> None:
        """Return to the queue, attempt refunded, jobs a worker did not start (their lease could
        not be vouched for) or whose database went away under them."""
        if not jobs:
            return
        sql.release(self.name, now, [claim_of(job) for job in jobs], started=False)
        for job in jobs:
            self._forget(job)
        logger.warning("jobs: %d claimed job(s) not run here, back in the queue: %s", len(jobs),
                       ", ".join(str(job.id) for job in jobs))

    def _forget(self, job: Job) -> None:
        """Drop ``job`` from the claims held, unless that id was claimed again since."""
        self._leases.forget(claim_of(job))
        if self._held.get(job.id) is job:
            del self._held[job.id]

    def _count(self, outcome: Outcome) -> None:
        if outcome.status == JobStatus.COMPLETED:
            self.counters.completed += 1
        elif outcome.status == JobStatus.FAILED:
            self.counters.failed += 1
            assert outcome.error is not None, "a failed outcome carries its error"
            logger.error("job %s (%s) failed for good: %s", outcome.job.id, outcome.job.topic,
                         outcome.error["traceback"].strip().splitlines()[-1])
        else:
            self.counters.retried += 1

    def _finished(self, outcome: Outcome) -> None:
        job = outcome.job
        if job.task_backend:
            from .backends import send_task_finished

            send_task_finished(job, outcome)
        if job_finished.receivers:
            job_finished.send(sender=type(self), job=job, status=outcome.status, error=outcome.exception)

    # -- leases -------------------------------------------------------------------------

    def _renew(self, sql: Statements) -> None:
        """Renew every lease held. A lease the database no longer gives this dispatcher is lost:
        its job is not started here; while a renewal fails, no job starts at all."""
        since = time.monotonic()
        if not self._held:
            self._leases.renewed(set(), since)
            return
        now = timezone.now()
        try:
            renewed = sql.extend(self.name, now, now + timedelta(seconds=self.lock_duration))
        except DatabaseError as e:
            if self._leases.unconfirmed():
                self._say(f"jobs: the leases of {len(self._held)} claimed job(s) could not be renewed "
                          f"({type(e).__name__}: {e}); no job starts until they are")
            raise
        lost = set(self._leases.renewed(renewed, since))
        if lost:
            dropped = self._todo.take_back(lambda job: claim_of(job) in lost)
            for job in dropped:
                self._forget(job)
            self._say(f"jobs: the leases of {len(lost)} job(s) were lost (this dispatcher did not renew them "
                      f"in time: stopped, paused or cut off?) and other workers may run them; "
                      f"{len(dropped)} of them had not started and will not start here")

    def _drop_expired(self, sql: Statements) -> None:
        """Give back the claimed jobs still waiting for a worker whose lease may run out before
        one takes them (renewals failed): the buffer never outlives the lease."""
        now = time.monotonic()
        expired = self._todo.take_back(lambda job: self._leases.expired(claim_of(job), now))
        if expired:
            self._say(f"jobs: {len(expired)} claimed job(s) not started before their lease could run out; "
                      "back in the queue")
            self._release(sql, expired, started=False)

    def _say(self, message: str) -> None:
        """A change in what this dispatcher may run: in the log and on its supervisor node."""
        logger.warning(message)
        _record_error(message)

    def _recover(self, sql: Statements) -> None:
        requeued, failed = sql.recover(timezone.now())
        if requeued or failed:
            self.counters.recovered += requeued + failed
            logger.warning("jobs: %d job(s) of a lost worker back in the queue, %d failed for good",
                           requeued, failed)

    # -- workers -------------------------------------------------------------------------

    def _start_threads(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"jobs-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._listener = wakeup_for(self.using, self.name, self.wake, _record_error)
        if self._listener is not None:
            self._listener.start()

    def _work(self) -> None:
        while (job := self._todo.take()) is not None:
            outcome = self._attempt(job)
            # the loop comes back by itself FINISH_DELAY after the first outcome: woken for
            # that one (to count from it) and when the outcomes are due, not for each job;
            # under a lock, so that of two workers finishing at once one knows it was first
            with self._done_lock:
                first = not self._done
                if first:
                    self._done_since = time.monotonic()
                self._done.append(outcome)
                wake = first or self._outcomes_due()
            if wake:
                self._wake.set()

    def _attempt(self, job: Job) -> Outcome:
        """Run ``job`` if its lease is still this dispatcher's, on connections checked before
        and after as Django checks them around a request."""
        if not self._leases.wait_startable(claim_of(job)):
            return Outcome(job, RETURNED)
        check_connections()
        with self._lock:
            self._running[job.id] = job
        try:
            outcome = start(job, sender=type(self))
            if lost_connection(outcome):
                logger.warning("job %s (%s): its database connection was lost (%s); back in the queue, "
                               "no attempt counted", job.id, job.topic, outcome.exception)
                outcome = Outcome(job, RETURNED, exception=outcome.exception)
        finally:
            with self._lock:
                self._running.pop(job.id, None)
            check_connections()
        return outcome

    def _stop_threads(self) -> None:
        for _ in self._threads:
            self._todo.put(None)
        if self._listener is not None:
            self._listener.stop()

    # -- shutdown ------------------------------------------------------------------------

    def _shut_down(self, sql: Statements) -> None:
        """Return jobs that never started, wait for running ones, return what is left."""
        self._release(sql, self._todo.take_back(lambda job: True), started=False)
        deadline = time.monotonic() + self.shutdown_timeout
        while self._held and time.monotonic() < deadline:
            self._wake.clear()
            try:
                self._flush(sql)
            except DatabaseError as e:
                self._database_error(e, 1)
            if self._held:
                self._wake.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        try:
            self._flush(sql)
        except DatabaseError as e:
            logger.error("jobs: outcomes not written at shutdown: %s", e)
        with self._lock:
            unfinished = list(self._running.values())
        if unfinished:
            logger.warning("jobs: %d job(s) still running after %.0fs; back in the queue", len(unfinished),
                           self.shutdown_timeout)
        self._release(sql, unfinished, started=True)

    def _release(self, sql: Statements, jobs: Iterable[Job], started: bool) -> None:
        jobs = list(jobs)
        if not jobs:
            return
        try:
            sql.release(self.name, timezone.now(), [claim_of(job) for job in jobs], started=started)
        except DatabaseError as e:
            logger.error("jobs: could not return %d claim(s); they come back when their lease ends: %s",
                         len(jobs), e)
        for job in jobs:
            self._forget(job)

    # -- status --------------------------------------------------------------------------

    def status_line(self, previous: Counters | None = None, seconds: float | None = None) -> str:
        """What ``runjobs`` prints: counts, rate (since ``previous``, ``seconds`` ago), due
        jobs, claims in hand, and the due jobs held back because their plugin is not enabled."""
        c = self.counters
        rate = ""
        if previous is not None and seconds:
            rate = f", {(c.processed - previous.processed) / seconds:.1f} jobs/s"
        return (f"runjobs {self.name}: {c.completed} completed, {c.failed} failed, {c.retried} retried"
                f"{rate}{self._queue_state()}, {len(self._held)} claimed")

    def _queue_state(self) -> str:
        try:
            held = held_by_plugin(self.topics, using=self.using)
            return f", {self.store.stats_due()} due, {describe_held(held)}"
        except DatabaseError:  # the line still says what this process did
            return ""


def _record_error(message: str) -> None:
    from tachycore.runtime import runtime

    if runtime.started:
        runtime.supervisor.record_error(message)


def _default_name() -> str:
    from tachycore.runtime import runtime

    return runtime.node_id


def copy_counters(counters: Counters) -> Counters:
    return dataclasses.replace(counters)
