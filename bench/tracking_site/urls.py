"""The site's URLs plus /bench/bare/pixel.gif: the same 1x1 GIF as the open pixel, answered
with nothing in between (no signature, no database): the framework's limit."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path

from channels.tracking import PIXEL
from channels.views import NO_STORE
from config.urls import handler404, handler500
from config.urls import urlpatterns as site_urlpatterns

__all__ = ["handler404", "handler500"]


def bare_pixel(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = NO_STORE
    return response


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare/pixel.gif", bare_pixel),
    *site_urlpatterns,
]
