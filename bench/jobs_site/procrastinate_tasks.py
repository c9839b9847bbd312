"""procrastinate's tasks (found through ``PROCRASTINATE_AUTODISCOVER_MODULE_NAME``)."""

from procrastinate.contrib.django import app

from .pickup import report


@app.task(name="bench.noop")
def noop(i: int) -> None:
    return None


@app.task(name="bench.pickup")
def pickup(sample: int) -> None:
    report(sample)
