from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import IsAdminUser

from demo import views

admin.site.site_header = "Plugin platform administration"
admin.site.site_title = "Plugin platform"

urlpatterns = [
    # a landing page with links to the rest (the admin's "View site" goes here)
    path("", views.home, name="home"),
    path("docs/<str:name>", views.doc, name="doc"),
    path("admin/", admin.site.urls),
    # the OpenAPI schema of every DRF API of the site, for staff: it maps the whole API surface
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[IsAdminUser]), name="schema"),
    # every plugin's URLs, at /api/<plugin name>/ while the plugin is enabled
    path("", include("tachycore.urls")),
]
