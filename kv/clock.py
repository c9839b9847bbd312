"""kv's clocks: ``now_ms()``, epoch milliseconds (the unit of ``_kv.expire_at``), and
``monotonic()``, seconds that never go back (the lifetimes of L1 entries).

Every module of kv reads them through this module (``clock.now_ms()``), never a copy
imported by name, so that tests stop time for all of kv by patching this module alone
(``tests/conftest.py``'s ``clock`` fixture moves both together).
"""

from __future__ import annotations

import time

#: the L1 cache's clock (the function itself: a wrapper would cost an L1 hit a call)
monotonic = time.monotonic


def now_ms() -> int:
    """Now, in milliseconds since the epoch."""
    return int(time.time() * 1000)
