"""What the plugin manager tells of one plugin (``pm list``, the admin, plans)."""

from __future__ import annotations

import dataclasses
from typing import Any

from .plugins import Plugin
from .registry import PluginRecord


@dataclasses.dataclass(frozen=True)
class PluginInfo:
    """What the manager knows of one plugin: its code (if installed) and its registry row."""

    name: str
    status: str  # enabled | disabled | added | not added | missing
    version: str  # the version of the code, or of the registry row for a missing plugin
    installed_version: str  # the version recorded at install or upgrade
    description: str
    package_name: str
    added: bool
    installed: bool
    enabled: bool
    built_in: bool
    missing: bool
    depends_on: tuple[str, ...]
    dependents: tuple[str, ...]
    options: dict[str, Any]
    last_error: str
    urls: str | None

    @property
    def upgradable(self) -> bool:
        return self.installed and not self.missing and self.version != self.installed_version

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["depends_on"] = list(self.depends_on)
        data["dependents"] = list(self.dependents)
        data["upgradable"] = self.upgradable
        return data


def status_of(record: PluginRecord | None, plugin: Plugin | None) -> str:
    if plugin is None:
        return "missing"
    if record is None:
        return "not added"
    if record.enabled:
        return "enabled"
    return "disabled" if record.installed else "added"
