"""The jobs API: one viewset over ``jobs.get_job_store()``."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from jobs import get_job_store
from jobs.conf import jobs_settings
from jobs.handlers import allowed_without_handler
from jobs.models import Job
from jobs.store import JobStore
from tachycore.parsers import JSONBodyParser
from tachycore.rest import JSONNegotiation, ThrottledAuthentication, error_responses, validated

from . import serializers as s
from .exceptions import TopicNotAllowed, exception_handler
from .permissions import CanEnqueue, CanManage
from .throttles import JobsThrottle


def _store() -> JobStore:
    store = get_job_store()
    if store is None:  # the URLs are only mounted through the jobs plugin, so jobs is installed
        raise RuntimeError("jobs is not in INSTALLED_APPS")
    return store


class JobPagination(PageNumberPagination):
    """50 jobs a page, ``page_size`` from 1 to ``MAX_PAGE_SIZE``.

    A malformed ``page`` or ``page_size`` (``abc``, ``0``, ``501``, empty) is a 400 naming it,
    where DRF would quietly serve the default page size or page 1; a page past the end stays
    DRF's 404.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = s.MAX_PAGE_SIZE

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        s.PageQuerySerializer(data=request.query_params).is_valid(raise_exception=True)
        return super().paginate_queryset(queryset, request, view)


@extend_schema_view(
    list=extend_schema(summary="List jobs", parameters=[s.JobQuerySerializer, s.PageQuerySerializer],
                       responses={200: s.JobSerializer(many=True), **error_responses(400, 403, 404)}),
    retrieve=extend_schema(summary="Read a job", responses={200: s.JobSerializer, **error_responses(403, 404)}),
    destroy=extend_schema(summary="Delete a job (not while it runs)",
                          responses={204: None, **error_responses(403, 404, 409)}),
)
class JobViewSet(ThrottledAuthentication, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Enqueue jobs (``JOBS["ENQUEUE_PERMISSION_CLASSES"]``) and look after them
    (``JOBS["MANAGE_PERMISSION_CLASSES"]``)."""

    serializer_class = s.JobSerializer
    pagination_class = JobPagination
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONBodyParser]
    content_negotiation_class = JSONNegotiation
    lookup_value_converter = "int"
    lookup_value_regex = r"\d+"
    throttle_classes = [JobsThrottle]

    def get_permissions(self) -> list[Any]:
        return [CanEnqueue()] if self.action == "create" else [CanManage()]

    def get_exception_handler(self):
        return exception_handler

    def get_queryset(self):
        jobs = Job.objects.using(_store().using).order_by("-id")
        if self.action == "list":
            query = s.JobQuerySerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            if "status" in query.validated_data:
                jobs = jobs.filter(status=query.validated_data["status"])
            if "topic" in query.validated_data:
                jobs = jobs.filter(topic=query.validated_data["topic"])
        return jobs

    def get_object(self) -> Job:
        """The job of the URL, once the manage classes' object permissions grant it."""
        job = _store().get(self.kwargs["pk"])
        self.check_object_permissions(self.request, job)
        return job

    @extend_schema(summary="Enqueue a job", request=s.EnqueueSerializer,
                   description="201 with the new job; 200 when a pending job holds the dedupe_key "
                               "(nothing added): the whole job for users who may manage jobs, else "
                               "its id, topic and status, with \"deduplicated\": true.",
                   responses={201: s.JobSerializer, 200: s.DedupedSerializer, **error_responses(400, 403, 413)})
    def create(self, request: Any) -> Response:
        data = validated(s.ENQUEUE, request.data)
        allowed = jobs_settings.ALLOWED_TOPICS
        if allowed is not None and not allowed_without_handler(data["topic"], allowed):
            raise TopicNotAllowed(f"topic {data['topic']!r} is not in JOBS['ALLOWED_TOPICS']")
        job = _store().enqueue(data["topic"], data["payload"], run_at=data.get("run_at"),
                               delay=data.get("delay"), priority=data["priority"],
                               max_retries=data.get("max_retries"), dedupe_key=data.get("dedupe_key"),
                               queue_name=data["queue_name"])
        if not job.deduplicated:
            return Response(s.JOB.to_representation(job), status=status.HTTP_201_CREATED)
        # an existing job (someone else's, perhaps): its details only for those who may read
        # jobs (the manage classes, asked about "create": jobs.view_job by default)
        if CanManage().has_permission(request, self):
            return Response({**s.JOB.to_representation(job), "deduplicated": True})
        return Response({"id": job.id, "topic": job.topic, "status": job.status, "deduplicated": True})

    def destroy(self, request: Any, pk: int) -> Response:
        self.get_object()  # 404 for a missing job, 403 where an object permission refuses it
        _store().delete(pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(summary="Put a job back in the queue, due now", request=None,
                   responses={200: s.JobSerializer, **error_responses(403, 404, 409)})
    @action(detail=True, methods=["post"])
    def requeue(self, request: Any, pk: int) -> Response:
        self.get_object()  # 404 for a missing job, 403 where an object permission refuses it
        job = _store().requeue(pk)
        return Response(s.JOB.to_representation(job))

    @extend_schema(summary="Counts by status and topic, and the age of the oldest due job",
                   responses={200: s.StatsSerializer, **error_responses(403)})
    @action(detail=False, methods=["get"])
    def stats(self, request: Any) -> Response:
        return Response(_store().stats().to_json())


def unknown_url(request: HttpRequest) -> JsonResponse:
    """A 404 as JSON for every URL under ``/api/jobs/`` that names no route: a malformed job id
    (``/api/jobs/abc/``, ``/api/jobs/-1/``) gets the same answer as a missing job."""
    return JsonResponse({"detail": "No such job: job ids are whole numbers, as in /api/jobs/42/."},
                        status=404)
