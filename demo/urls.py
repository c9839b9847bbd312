from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Plugin platform administration"
admin.site.site_title = "Plugin platform"

urlpatterns = [
    path("admin/", admin.site.urls),
    # every plugin's URLs, at /api/<plugin name>/ while the plugin is enabled
    path("", include("tachycore.urls")),
]
