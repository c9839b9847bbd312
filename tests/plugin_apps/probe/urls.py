"""URLs of the probe plugin, at /api/probe/: ``GET <what>/`` tries that operation."""

from __future__ import annotations

from django.http import Http404, JsonResponse
from django.urls import path

from .operations import OPERATIONS, run

app_name = "probe"


def try_operation(request, what):
    """``{"done": what, "result": ...}``, or a 403 (by the kernel) when the grants refuse it."""
    if what not in OPERATIONS:
        raise Http404(what)
    return JsonResponse({"done": what, "result": run(what, request.GET.get("then", ""))})


urlpatterns = [path("<str:what>/", try_operation, name="try")]
