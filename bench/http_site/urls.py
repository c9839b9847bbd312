"""The demo's URLs, plus the plain views under ``/plain/``."""

from django.urls import path

from demo.urls import urlpatterns as demo_urlpatterns

from . import views

urlpatterns = [
    path("plain/kv/<path:key>/", views.kv_get),
    path("plain/jobs/", views.enqueue),
    *demo_urlpatterns,
]
