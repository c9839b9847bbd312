"""URLs of the test plugin, at /api/toolbox/: views that say who the kernel says is calling."""

import asyncio

from django.http import JsonResponse
from django.urls import path

from tachycore.context import current_plugin
from tachycore.trace import current_trace_id, traceparent

app_name = "toolbox"


def whoami(request):
    return JsonResponse({"plugin": current_plugin()})


async def whoami_async(request):
    await asyncio.sleep(0)  # the context follows the await
    return JsonResponse({"plugin": current_plugin()})


def trace(request):
    """The trace the view runs in, and a job enqueued from it."""
    import jobs

    job = jobs.get_job_store().enqueue("toolbox.whoami", {"trace": True}) if request.GET.get("enqueue") else None
    return JsonResponse({"trace_id": current_trace_id(), "traceparent": traceparent(),
                         "job": job.id if job else None})


urlpatterns = [
    path("trace/", trace, name="trace"),
    path("whoami/", whoami, name="whoami"),
    path("whoami-async/", whoami_async, name="whoami-async"),
]
