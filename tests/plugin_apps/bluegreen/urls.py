"""URLs of the bluegreen test plugin, at /api/bluegreen/."""

from django.http import JsonResponse
from django.urls import path

app_name = "bluegreen"


def _instance():
    from tachycore.instances import current_instance

    # the instance the kernel entered for this request (a reload meanwhile does not change it)
    return current_instance()


def serial(request):
    plugin = _instance()
    return JsonResponse({"serial": plugin.serial, "colour": plugin.options["colour"]})


def slow(request):
    """Sleep inside the instance the request entered, then say which one it was."""
    plugin = _instance()
    seconds = min(float(request.GET.get("seconds", "1")), 10.0)
    serial_at_start = plugin.serial
    done, colour = plugin.work(pause=seconds)
    return JsonResponse({"serial": done, "serial_at_start": serial_at_start, "colour": colour})


def hold(request):
    """Stay inside the instance until the file ``<BLUEGREEN_LOG>.release`` exists (at most
    30 s), then say which instance it was: a request a test ends when it chooses."""
    import os
    import time

    plugin = _instance()
    release = os.environ["BLUEGREEN_LOG"] + ".release"
    deadline = time.monotonic() + 30
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)
    return JsonResponse({"serial": plugin.serial})


urlpatterns = [
    path("hold/", hold, name="hold"),
    path("serial/", serial, name="serial"),
    path("slow/", slow, name="slow"),
]
