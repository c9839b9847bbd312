"""One JSON line at a time on standard output, from any thread (what tests/test_events.py reads)."""

from __future__ import annotations

import json
import sys
import threading

_lock = threading.Lock()


def say(line: object) -> None:
    with _lock:
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
