"""URLs of the jobs API, mounted by the kernel at ``/api/jobs/`` while the jobs plugin is
enabled; while ``JOBS["HTTP_ENABLED"]`` is false or ``JOBS["DISABLED"]`` true (read on each
request) no route resolves."""

from __future__ import annotations

from django.urls import re_path
from rest_framework.routers import SimpleRouter

from jobs.conf import jobs_settings

from . import views


def served() -> bool:
    """Whether the URLs resolve (``tachycore.routing.PluginURLResolver`` asks on each request):
    while ``JOBS["HTTP_ENABLED"]`` is true and jobs is not disabled."""
    return jobs_settings.HTTP_ENABLED and not jobs_settings.DISABLED


router = SimpleRouter(use_regex_path=False)
router.register("", views.JobViewSet, basename="job")

app_name = "jobs"
urlpatterns = [
    *router.urls,
    # any other URL ending in "/" (a malformed id: /api/jobs/abc/) is the API's JSON 404 too,
    # not Django's HTML page; without the "/", Django's APPEND_SLASH redirect comes first
    re_path(r"^[\s\S]+/\Z", views.unknown_url),
]
