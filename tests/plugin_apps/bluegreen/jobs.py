"""A job handler of the bluegreen test plugin: a call inside the instance the job entered."""

from __future__ import annotations

import jobs


@jobs.handler("bluegreen.work")
def work(job):
    """Run inside the instance for ``pause`` seconds; return its serial."""
    from tachycore.instances import current_instance

    serial, colour = current_instance().work(pause=job.payload.get("pause", 0))
    return {"serial": serial, "colour": colour}
