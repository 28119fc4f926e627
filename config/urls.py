"""The site's URLs: health probes, the admin, the API, the public pages of each app."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django_ratelimit.decorators import ratelimit
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import views

# Brute force on the admin login: limited per client IP and per user name tried.
admin.site.login = ratelimit(  # type: ignore[method-assign]
    key="ip", rate=settings.ADMIN_LOGIN_RATE, method="POST", block=True, group="admin-login-ip"
)(
    ratelimit(
        key="post:username",
        rate=settings.ADMIN_LOGIN_RATE,
        method="POST",
        block=True,
        group="admin-login-user",
    )(admin.site.login)
)

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("subscribers.urls")),
    path("", include("publishing.urls")),
    path("", include("channels.urls")),
]
