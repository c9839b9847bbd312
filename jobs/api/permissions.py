"""Who may use the API: ``JOBS["ENQUEUE_PERMISSION_CLASSES"]`` for ``POST /api/jobs/``,
``JOBS["MANAGE_PERMISSION_CLASSES"]`` for everything else.

By default they are the model permissions of ``jobs.Job``, as the admin's job pages ask them,
so that the API and the admin agree on who may do what:

- enqueueing needs ``jobs.add_job`` (an "enqueue-only" user holds just that);
- listing and reading jobs (payload, result, errors included) and the stats need
  ``jobs.view_job`` or ``jobs.change_job``; so does seeing the whole job an enqueue found by
  its ``dedupe_key`` (others get its id, topic and status);
- requeueing needs ``jobs.change_job``; deleting ``jobs.delete_job``.

Staff status is neither needed nor enough: ``is_staff`` lets a user sign in to the admin, the
permissions say what the user may do with jobs, there and here. A service account that
enqueues with a token holds ``jobs.add_job`` and is not staff. Superusers may do everything.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from tachycore import rest
from tachycore.rest import Needs

ENQUEUE_SETTING = "ENQUEUE_PERMISSION_CLASSES"
MANAGE_SETTING = "MANAGE_PERMISSION_CLASSES"


def load_permission_classes(setting_name: str) -> list[type]:
    """Import the classes listed in ``JOBS[setting_name]``; ``PermissionClassError`` names the bad one."""
    from jobs.conf import jobs_settings

    return rest.load_permission_classes(jobs_settings, setting_name)


VIEW = "jobs.view_job"
CHANGE = "jobs.change_job"
DELETE = "jobs.delete_job"

READ = Needs("read jobs", ((VIEW,), (CHANGE,)))
#: what each action of the viewset needs under the default manage class; "create" is asked
#: only when an enqueue found a pending job by its dedupe_key: to show that whole job
NEEDS = {
    "list": READ, "retrieve": READ, "stats": READ, "metadata": READ,
    "create": Needs("see the whole job an enqueue found by its dedupe_key", ((VIEW,), (CHANGE,))),
    "requeue": Needs("requeue jobs", ((CHANGE,),)),
    "destroy": Needs("delete jobs", ((DELETE,),)),
}
#: an action the viewset does not have (a method it does not take): as for a change
OTHER = Needs("change jobs", ((CHANGE,),))


class CanAddJob(BasePermission):
    """The user has the ``jobs.add_job`` model permission."""

    message = "You need the jobs.add_job permission to enqueue jobs."

    def has_permission(self, request: Any, view: Any) -> bool:
        return bool(request.user and request.user.has_perm("jobs.add_job"))


class HasJobPermission(rest.ModelPermission):
    """The model permission of ``jobs.Job`` each action needs (the default manage class):
    view (or change) to read, change to requeue, delete to delete."""

    def needs(self, request: Any, view: Any) -> Needs:
        return NEEDS.get(getattr(view, "action", None) or "", OTHER)


class _Configured(rest.EveryClassPermission):
    setting_name = ""

    def get_permission_classes(self, request: Any) -> list[type]:
        return load_permission_classes(self.setting_name)


class CanEnqueue(_Configured):
    """Every class of ``JOBS["ENQUEUE_PERMISSION_CLASSES"]`` grants the request."""

    setting_name = ENQUEUE_SETTING


class CanManage(_Configured):
    """Every class of ``JOBS["MANAGE_PERMISSION_CLASSES"]`` grants the request."""

    setting_name = MANAGE_SETTING
