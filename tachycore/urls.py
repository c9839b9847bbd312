"""Include in the site's urlconf: ``path("", include("tachycore.urls"))``."""

from tachycore.routing import plugin_urlpatterns

urlpatterns = plugin_urlpatterns()
