"""URLs of the test plugin, at /api/toolbox/: views that say who the kernel says is calling."""

import asyncio

from django.http import JsonResponse
from django.urls import path

from tachycore.context import current_plugin

app_name = "toolbox"


def whoami(request):
    return JsonResponse({"plugin": current_plugin()})


async def whoami_async(request):
    await asyncio.sleep(0)  # the context follows the await
    return JsonResponse({"plugin": current_plugin()})


urlpatterns = [
    path("whoami/", whoami, name="whoami"),
    path("whoami-async/", whoami_async, name="whoami-async"),
]
