"""Who may use the store: the check each Redis-like operation makes first.

Called by the host site (no plugin running), an operation costs one context-variable read
more: ``if current_plugin() is not None: check(...)``, inline, as the first line of each
operation. Called by a plugin's code, it asks ``tachycore.governance`` whether the plugin
holds ``kv`` at the operation's access (READ: get, exists, ttl, keys, hget...; WRITE: set,
incr, delete, expire, hset, lock...): ``CapabilityDenied`` when it does not, before anything
is read or written. The store's statements themselves are its own: they run on cursors the
SQL guard does not parse (the grant of ``kv`` stands for them; see ``builtin_cursor``).
"""

from __future__ import annotations

from typing import Any

from tachycore import governance
from tachycore.context import current_plugin
from tachycore.models import Access

__all__ = ["READ", "WRITE", "check", "current_plugin"]

CAPABILITY = "kv"
READ, WRITE = Access.READ, Access.WRITE


def check(access: Access, operation: str, key: Any = "") -> None:
    """Refuse ``operation`` to the plugin running now unless it holds ``kv`` at ``access``."""
    plugin = current_plugin()
    if plugin is not None:
        target = key[:200] if isinstance(key, str) else ""
        governance.enforce(plugin, CAPABILITY, access, action=f"kv.{operation}", target=target)
