"""The job dashboard's chart: finished jobs per minute, laid out for an inline SVG.

The numbers come from one grouped query; the layout (bar positions, axis ticks) is
computed here so that the template only writes the elements, and the page needs no
JavaScript to draw or read it.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.utils import timezone

from jobs.models import Job, JobStatus

__all__ = ["Bar", "BarChart", "Minute", "bar_chart", "finished_per_minute"]

MINUTE = datetime.timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class Minute:
    """How many jobs completed and failed in one minute."""

    start: datetime.datetime
    completed: int = 0
    failed: int = 0


class MinuteUTC(TruncMinute):
    """``TruncMinute`` in UTC; on SQLite written with SQLite's own ``strftime``: Django's
    SQLite ``TruncMinute`` calls a Python function for each row (40 ms for the hour of a
    table of a million jobs), and SQLite stores datetimes as UTC text, which ``strftime``
    reads as such."""

    def __init__(self, expression: str) -> None:
        super().__init__(expression, tzinfo=datetime.UTC)

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> tuple[str, tuple[str | int, ...]]:
        sql, params = compiler.compile(self.lhs)
        return f"strftime('%%Y-%%m-%%d %%H:%%M:00', {sql})", tuple(params)


def finished_per_minute(now: datetime.datetime, minutes: int = 60,
                        using: str | None = None) -> list[Minute]:
    """The last ``minutes`` minutes up to ``now`` (the current minute last), each with the
    jobs that completed and failed in it, from one query grouped by minute and status."""
    last = now.astimezone(datetime.UTC).replace(second=0, microsecond=0)
    first = last - (minutes - 1) * MINUTE
    rows = (Job.objects.using(using).finished()  # the partial index of finished jobs by age
            .filter(finished_at__gte=first, finished_at__lt=last + MINUTE)
            # truncated in UTC: minutes are the same everywhere, and the keys match ``first``
            .annotate(minute=MinuteUTC("finished_at"))
            .values("minute", "status").annotate(n=Count("id")).order_by())
    counts: dict[tuple[datetime.datetime, str], int] = {}
    for row in rows:
        counts[row["minute"].astimezone(datetime.UTC), row["status"]] = row["n"]
    series = []
    for i in range(minutes):
        start = first + i * MINUTE
        series.append(Minute(start=start, completed=counts.get((start, JobStatus.COMPLETED), 0),
                             failed=counts.get((start, JobStatus.FAILED), 0)))
    return series


@dataclasses.dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int


@dataclasses.dataclass(frozen=True)
class Slot:
    """One minute of the chart: its two bars, and the area whose <title> describes it."""

    label: str
    title: str
    x: float
    width: float
    completed: Bar
    failed: Bar


@dataclasses.dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclasses.dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    #: the plot area, inside the axes
    left: int
    top: int
    bottom: int
    right: int
    plot_height: int
    #: the plot's vertical middle (for the y axis title)
    middle: int
    slots: list[Slot]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    total_completed: int
    total_failed: int


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value`` (and at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bar_chart(series: list[Minute], *, width: int = 760, height: int = 240,
              x_tick_every: int = 10) -> BarChart:
    """Lay ``series`` out as grouped bars (completed, failed) with axis ticks."""
    left, right, top, bottom = 48, width - 12, 12, height - 32
    plot_height = bottom - top
    top_value = nice_ceiling(max((max(m.completed, m.failed) for m in series), default=0))
    slot_width = (right - left) / max(len(series), 1)
    bar_width = max(slot_width / 2 - 1, 1)

    def bar(x: float, count: int) -> Bar:
        h = plot_height * count / top_value
        return Bar(x=round(x, 2), y=round(bottom - h, 2), width=round(bar_width, 2),
                   height=round(h, 2), count=count)

    slots, x_ticks = [], []
    for i, minute in enumerate(series):
        x = left + i * slot_width
        label = timezone.localtime(minute.start).strftime("%H:%M")
        slots.append(Slot(label=label, title=f"{label}: {minute.completed} completed, {minute.failed} failed",
                          x=round(x, 2), width=round(slot_width, 2),
                          completed=bar(x + 0.5, minute.completed),
                          failed=bar(x + 0.5 + bar_width, minute.failed)))
        if i % x_tick_every == 0 or i == len(series) - 1:
            x_ticks.append(Tick(position=round(x + slot_width / 2, 2), label=label))
    values = [0, top_value // 2, top_value] if top_value % 2 == 0 else [0, top_value]
    y_ticks = [Tick(position=round(bottom - plot_height * value / top_value, 2), label=str(value))
               for value in values]
    return BarChart(width=width, height=height, left=left, top=top, bottom=bottom, right=right,
                    plot_height=plot_height, middle=top + plot_height // 2,
                    slots=slots, y_ticks=y_ticks, x_ticks=x_ticks,
                    total_completed=sum(m.completed for m in series),
                    total_failed=sum(m.failed for m in series))

