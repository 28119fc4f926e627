"""The page shown when a rate limit is hit, for django-ratelimit (RATELIMIT_VIEW) and for the
apps' own limits (the sign-up page). Part of the config toolkit: apps may import it; it imports
no app."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

#: Seconds a client is told to wait (Retry-After) after hitting a limit whose window is unknown
#: here (django-ratelimit's decorators hand RATELIMIT_VIEW no usage).
RETRY_AFTER_SECONDS = 60


def ratelimited(
    request: HttpRequest, exception: Exception, *, retry_after: int = RETRY_AFTER_SECONDS
) -> HttpResponse:
    """What django-ratelimit shows when a limit is hit: a clear page with status 429.

    ``retry_after``: the seconds until the exceeded limit lifts, when the caller knows them.
    """
    response = render(request, "ratelimited.html", status=429)
    response["Retry-After"] = str(retry_after)
    return response
