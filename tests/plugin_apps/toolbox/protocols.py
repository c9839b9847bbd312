"""The Protocol the toolbox plugin provides (``ToolboxPlugin.provides``)."""

from __future__ import annotations

from typing import Any, Protocol


class Identity(Protocol):
    """Who runs a service call, and on which instance."""

    def get_identity(self) -> dict[str, Any]: ...

    def echo(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...
