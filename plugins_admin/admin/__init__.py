"""The admin pages, one module per area; each registers its ModelAdmin with ``admin.site``.

Django's admin autodiscovery imports this package (``plugins_admin.admin``) at start.
"""

from __future__ import annotations

from django.apps import apps

from . import audit, grants, nodes, plugins  # noqa: F401

if apps.is_installed("jobs"):
    from . import jobs  # noqa: F401
if apps.is_installed("kv"):
    from . import keys  # noqa: F401
if apps.is_installed("django_q"):
    from . import schedules  # noqa: F401
