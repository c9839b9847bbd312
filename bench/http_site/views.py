"""The anchors: one store call each, a ``JsonResponse``, no DRF, no authentication."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import jobs
import kv


@require_GET
def kv_get(request: HttpRequest, key: str) -> JsonResponse:
    """The value of ``key`` (``kv.get_store().get``)."""
    return JsonResponse({"key": key, "value": kv.get_store().get(key)})


@csrf_exempt
@require_POST
def enqueue(request: HttpRequest) -> JsonResponse:
    """Enqueue the body's ``topic`` with its ``payload`` (``jobs.get_job_store().enqueue``)."""
    body = json.loads(request.body)
    job = jobs.get_job_store().enqueue(body["topic"], body.get("payload"))
    return JsonResponse({"id": job.id, "topic": job.topic, "status": job.status}, status=201)
