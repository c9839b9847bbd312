"""Signal receivers connected in ``JobsConfig.ready()``."""

from __future__ import annotations

from typing import Any


def register_prune_schedule(*, using: str, apps: Any = None, verbosity: int = 1, stdout: Any = None,
                            **kwargs: Any) -> None:
    """After ``migrate``: create, or bring in line, the django-q2 schedule that prunes old jobs."""
    from tachycore.schedules import keep_schedule_after_migrate

    from .schedules import register_prune_schedule as register

    keep_schedule_after_migrate(register, using=using, apps=apps, verbosity=verbosity, stdout=stdout)


_embedded: dict[str, Any] = {}


def start_embedded_dispatcher(*, kind: str, node_id: str, **kwargs: Any) -> None:
    """With ``JOBS["AUTO_START"]``, a web process runs a dispatcher in a thread (a laptop
    set-up without ``runjobs``); it stops with the process's services. Nothing starts while
    jobs is disabled."""
    import threading

    from .conf import jobs_settings
    from .dispatcher import Dispatcher

    if kind != "web" or not jobs_settings.AUTO_START or jobs_settings.DISABLED or "dispatcher" in _embedded:
        return
    dispatcher = Dispatcher(name=f"{node_id}-jobs")
    thread = threading.Thread(target=dispatcher.run, name="jobs-dispatcher", daemon=True)
    _embedded.update(dispatcher=dispatcher, thread=thread)
    thread.start()


def stop_embedded_dispatcher(**kwargs: Any) -> None:
    dispatcher, thread = _embedded.pop("dispatcher", None), _embedded.pop("thread", None)
    if dispatcher is not None:
        dispatcher.stop()
        thread.join(dispatcher.shutdown_timeout + 5)
