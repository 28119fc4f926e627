"""The site's URLs: health probes, the admin, the API, the public pages of each app."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, include, path
from django.views import defaults
from django_ratelimit.decorators import ratelimit
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import views
from config.api.exceptions import problem_response

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

urlpatterns: list[URLPattern | URLResolver] = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("config.api.urls")),
    path("", include("subscribers.urls")),
    path("", include("publishing.urls")),
    path("", include("channels.urls")),
]


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problem_response(request, 404, "No API endpoint at this address.", "not_found")
    return defaults.page_not_found(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return problem_response(request, 500, "An unexpected error occurred.", "server_error")
    return defaults.server_error(request)
