"""Admin pages: django-q2's schedules and tasks, for superusers only.

A schedule names any importable function and the arguments it is called with, and a
django-q2 worker calls it: writing one is as strong as running code on the server.
The task lists run code too (their "resubmit" action calls a task's function again,
with its arguments, and needs no more than the view permission), and the ORM
broker's queue hands a task to a worker again when its lock is moved back. So these
pages are not given to staff through model permissions: only superusers see them in
the admin index, and anyone else gets a 403 on each of them. django-q2's own admin
classes still do the work (its columns, filters, cron field and actions).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

# importing it registers django-q2's own pages on admin.site, replaced below
# (whichever of django_q and plugins_admin comes first in INSTALLED_APPS)
from django_q import admin as q_admin
from django_q.models import Failure, OrmQ, Schedule, Success

from .lookups import FilterLookupsOnly


class SuperusersOnly(admin.ModelAdmin):
    """Every page and action of this admin needs a superuser; model permissions given
    to staff do not open it."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class ScheduleAdmin(SuperusersOnly, FilterLookupsOnly, q_admin.ScheduleAdmin):
    """Schedules: a function name and its arguments, called by a worker."""


class SuccessAdmin(SuperusersOnly, FilterLookupsOnly, q_admin.TaskAdmin):
    """Successful tasks, which the resubmit action runs again."""


class FailureAdmin(SuperusersOnly, FilterLookupsOnly, q_admin.FailAdmin):
    """Failed tasks, which the resubmit action runs again."""


class QueueAdmin(SuperusersOnly, FilterLookupsOnly, q_admin.QueueAdmin):
    """The ORM broker's queue, whose lock field decides when a task is handed out again."""


REPLACEMENTS: dict[type, type[admin.ModelAdmin]] = {
    Schedule: ScheduleAdmin, Success: SuccessAdmin, Failure: FailureAdmin, OrmQ: QueueAdmin,
}


def replace_django_q_admins(site: admin.AdminSite) -> None:
    """Register the superuser-only pages in place of each django-q2 page on ``site``
    (the queue's only when django-q2 registered it: with the ORM broker)."""
    for model, admin_class in REPLACEMENTS.items():
        if site.is_registered(model):
            site.unregister(model)
            site.register(model, admin_class)


replace_django_q_admins(admin.site)
