"""The site's URLs: health probes, the admin, the API, the public pages of each app."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("", include("subscribers.urls")),
    path("", include("publishing.urls")),
    path("", include("channels.urls")),
]
