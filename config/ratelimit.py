"""The page shown when a rate limit is hit, for django-ratelimit (RATELIMIT_VIEW) and for the
apps' own limits (the sign-up page). Part of the config toolkit: apps may import it; it imports
no app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

#: Seconds a client is told to wait (Retry-After) after hitting a limit.
RETRY_AFTER_SECONDS = 60


def ratelimited(request: HttpRequest, exception: Exception) -> HttpResponse:
    """What django-ratelimit shows when a limit is hit: a clear page with status 429."""
    response = render(request, "ratelimited.html", status=429)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
