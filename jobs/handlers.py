"""Topic handlers: ``@jobs.handler("topic")`` and the lookup the dispatcher does.

Handlers live in a module named ``jobs.py`` in any installed app; ``JobsConfig.ready()``
imports them all (as the admin does with ``admin.py``), so a handler is known in every
process that loads the site.
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Callable
from typing import Any

from django.apps import apps

from tachycore.jsontext import string_fault

from .errors import HandlerAlreadyRegistered, InvalidTopic

__all__ = ["Handler", "TopicHandlers", "handler", "handlers"]

HANDLER_MODULE = "jobs"
MAX_TOPIC_LENGTH = 255


def check_topic(topic: Any) -> str:
    if not isinstance(topic, str) or not topic or len(topic) > MAX_TOPIC_LENGTH or string_fault(topic) is not None:
        raise InvalidTopic(f"a topic must be a non-empty string of at most {MAX_TOPIC_LENGTH} "
                           f"characters, without NUL or lone surrogate, got {topic!r}")
    return topic


def owner_app_label(module: str) -> str | None:
    """The label of the installed app a module belongs to (``None`` outside any app)."""
    app_config = apps.get_containing_app_config(module)
    return app_config.label if app_config else None


@dataclasses.dataclass(frozen=True)
class Handler:
    topic: str
    func: Callable[..., Any]
    #: the app the function is defined in: its plugin, if any, gates the topic
    app_label: str | None


class TopicHandlers:
    """Topic -> handler, for this process."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, topic: str, func: Callable[..., Any]) -> Handler:
        check_topic(topic)
        existing = self._handlers.get(topic)
        if existing is not None and _qualname(existing.func) != _qualname(func):
            raise HandlerAlreadyRegistered(
                f"topic {topic!r} has a handler already: {_qualname(existing.func)}")
        entry = Handler(topic, func, owner_app_label(func.__module__))
        self._handlers[topic] = entry
        return entry

    def unregister(self, topic: str) -> None:
        self._handlers.pop(topic, None)

    def get(self, topic: str) -> Handler | None:
        return self._handlers.get(topic)

    def topics(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, topic: str) -> bool:
        return topic in self._handlers

    def __iter__(self):
        return iter(list(self._handlers.values()))


def _qualname(func: Callable[..., Any]) -> str:
    return f"{func.__module__}.{getattr(func, '__qualname__', repr(func))}"


handlers = TopicHandlers()


def handler(topic: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the handler of ``topic``.

    The function receives the :class:`jobs.models.Job` (``job.payload`` is the JSON
    payload); what it returns (JSON) is stored as ``job.result``; an exception fails
    the attempt, and the job is retried with backoff up to its ``max_retries``.
    """

    def register(func: Callable[..., Any]) -> Callable[..., Any]:
        handlers.register(topic, func)
        return func

    return register


def allowed_without_handler(topic: str, patterns: list[str] | None) -> bool:
    """Whether ``topic`` matches one of the ``ALLOWED_TOPICS`` patterns."""
    return patterns is not None and any(fnmatch.fnmatchcase(topic, pattern) for pattern in patterns)


def autodiscover() -> None:
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules(HANDLER_MODULE)
