"""Public pages of subscribers (the subscribers issue builds them out)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def preferences(request: HttpRequest, token: str) -> HttpResponse:
    return HttpResponse("The preference center is not built yet.", status=501)


def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    return HttpResponse("Unsubscribing is not built yet.", status=501)
