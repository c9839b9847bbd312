"""What a service call through the kernel costs: ``tachycore.invoke`` of a no-op service
against a plain method call and a Django ``Signal.send`` to one receiver.

    .venv/bin/python bench/services.py                                          # SQLite (a temporary file)
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/tachy_bench .venv/bin/python bench/services.py

On the demo's settings, with ``notes`` enabled (and ``audit``, its dependency): the demo's
audit plugin gets a no-op service for the run, ``audit:nothing`` (READ). Measured in
alternating rounds, so that a busy machine weighs on each alike (medians):

- the method called directly on the plugin object (what a plugin importing another's code does);
- ``Signal.send`` of a Django ``Signal`` with one receiver that does nothing (the anchor);
- ``tachycore.invoke("audit:nothing")`` from the host site (no grant to check);
- the same from the plugin ``notes``, granted ``service:audit:nothing`` READ (the grant is
  checked), and governance's allowed check (``governance.enforce``) alone, the part of it that
  the host's call does not make.

Goal: an invoke at most 3x a ``Signal.send`` to one receiver, judged for both callers. No
database query is made on these paths: the database only matters for the set-up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.demo_site import use_demo_site  # noqa: E402 (after the path it is found on)

use_demo_site()

GOAL = 3.0


def per_op(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def nothing(self) -> None:
    """The no-op service."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20000, help="calls per round")
    args = parser.parse_args()

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.dispatch import Signal

    import tachycore
    from demo.audit.plugin import AuditPlugin
    from tachycore import governance
    from tachycore.context import acting_as
    from tachycore.governance import grants
    from tachycore.manager import plugin_manager
    from tachycore.models import Access

    # before the first call of any audit service: the kernel reads a plugin's services once
    AuditPlugin.nothing = tachycore.service("nothing", access="READ")(nothing)
    call_command("migrate", verbosity=0)
    call_command("pm", "enable", "notes", "--grant-requested", verbosity=0)
    grants.grant("notes", "service:audit:nothing", "READ", granted_by="bench/services.py")

    audit = plugin_manager.plugins["audit"]
    signal = Signal()

    def receiver(sender, **kwargs) -> None:
        return None

    signal.connect(receiver, weak=False)
    invoke = tachycore.invoke

    def plain() -> None:
        audit.nothing()

    def send() -> None:
        signal.send(sender=None)

    def from_host() -> None:
        invoke("audit:nothing")

    def from_notes() -> None:
        with acting_as("notes"):
            invoke("audit:nothing")

    def acting_only() -> None:  # what from_notes adds around the call, subtracted below
        with acting_as("notes"):
            pass

    def grant_check() -> None:  # the part of from_notes that is governance's allowed check
        governance.enforce("notes", "service:audit:nothing", Access.READ, action="service.invoke",
                           target="audit:nothing")

    measured = {"plain": plain, "send": send, "host": from_host, "notes": from_notes, "acting": acting_only,
                "check": grant_check}
    results: dict[str, list[float]] = {name: [] for name in measured}
    for fn in measured.values():
        per_op(fn, 1000)  # warm: the parsed id, the grants, the plugin states
    for _ in range(args.rounds):
        for name, fn in measured.items():
            results[name].append(per_op(fn, args.calls))
    median = {name: statistics.median(values) for name, values in results.items()}
    notes_invoke = median["notes"] - median["acting"]
    send_time = median["send"]

    print(f"database: {connection.vendor} (not used on these paths); load average {os.getloadavg()[0]:.2f}")
    print(f"plain method call on the plugin object            {median['plain'] * 1e6:8.3f} µs")
    print(f"Signal.send to one receiver (anchor)              {send_time * 1e6:8.3f} µs")
    print(f"tachycore.invoke from the host site               {median['host'] * 1e6:8.3f} µs"
          f"   {median['host'] / send_time:.2f}x Signal.send, {median['host'] / median['plain']:.1f}x a plain call")
    print(f"tachycore.invoke from a plugin (grant checked)    {notes_invoke * 1e6:8.3f} µs"
          f"   {notes_invoke / send_time:.2f}x Signal.send, {notes_invoke / median['plain']:.1f}x a plain call")
    print(f"  of which governance.enforce, the allowed check    {median['check'] * 1e6:8.3f} µs"
          f"   {median['check'] / send_time:.2f}x Signal.send")
    for caller, figure in (("the host site", median["host"]), ("a plugin", notes_invoke)):
        ratio = figure / send_time
        print(f"goal: invoke from {caller} <= {GOAL:g}x Signal.send: {'met' if ratio <= GOAL else 'NOT met'} "
              f"({ratio:.2f}x)")


if __name__ == "__main__":
    main()
