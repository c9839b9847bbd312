"""Taking grants away in tests, bypassing the audited path (it is not what a test checks)."""

from __future__ import annotations

from tachycore.governance import grants
from tachycore.models import CapabilityGrant


def revoke(plugin: str, capability: str | None = None) -> None:
    """Delete ``plugin``'s grant of ``capability`` (every grant of it without one); this
    process reads the grants again at its next check."""
    rows = CapabilityGrant.objects.filter(plugin=plugin)
    if capability is not None:
        rows = rows.filter(capability=capability)
    rows.delete()
    grants.forget()


def revoke_everything() -> None:
    CapabilityGrant.objects.all().delete()
    grants.forget()
