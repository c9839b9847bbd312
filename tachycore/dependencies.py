"""The order plugins come up and go down in, from their ``depends_on``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .errors import DependencyError
from .plugins import Plugin
from .registry import PluginRecord


class Dependencies:
    """The dependency rules over the plugins whose code is installed.

    ``recorded(name)`` tells whether the registry holds a row for a plugin whose code
    is gone, so that an error can say "missing" rather than "not installed".
    """

    def __init__(self, plugins: Mapping[str, Plugin], recorded: Callable[[str], bool]) -> None:
        self.plugins = plugins
        self.recorded = recorded

    def resolve(self, names: Iterable[str]) -> list[str]:
        """``names`` and everything they depend on, dependencies first;
        ``DependencyError`` for a cycle or a dependency whose code is not installed."""
        order: list[str] = []
        visiting: list[str] = []

        def visit(name: str) -> None:
            if name in order:
                return
            if name in visiting:
                cycle = " -> ".join([*visiting[visiting.index(name):], name])
                raise DependencyError(f"dependency cycle: {cycle}")
            plugin = self.plugins.get(name)
            if plugin is None:
                what = "is missing" if self.recorded(name) else "is not installed"
                raise DependencyError(f"plugin {visiting[-1]!r} depends on {name!r}, which {what}")
            visiting.append(name)
            for dependency in plugin.depends_on:
                visit(dependency)
            visiting.pop()
            order.append(name)

        for name in names:
            visit(name)
        return order

    def order(self, names: set[str]) -> list[str]:
        """``names`` (code installed), dependencies first; a cycle falls back to name order."""
        try:
            return [name for name in self.resolve(sorted(names)) if name in names]
        except DependencyError:
            return sorted(names)

    def teardown_order(self, names: Iterable[str]) -> list[str]:
        """``names``, each before the plugins it depends on (those without code last)."""
        with_code = [name for name in names if name in self.plugins]
        ordered = list(reversed(self.order(set(with_code))))
        return ordered + [name for name in names if name not in self.plugins]

    def dependents_of(self, name: str) -> list[str]:
        """The plugins that name ``name`` in their ``depends_on``, sorted."""
        return sorted(other.name for other in self.plugins.values() if name in other.depends_on)

    def refuse_if_needed(self, names: Iterable[str], records: Mapping[str, PluginRecord],
                         operation: str) -> None:
        """``DependencyError`` naming them while enabled plugins outside ``names`` need one."""
        leaving = set(names)
        for name in names:
            blockers = [
                dependent for dependent in self.dependents_of(name)
                if dependent not in leaving and dependent in records and records[dependent].enabled
            ]
            if blockers:
                raise DependencyError(
                    f"cannot {operation} plugin {name!r}: enabled plugins depend on it: "
                    f"{', '.join(blockers)} (disable them first)"
                )
