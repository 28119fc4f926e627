"""Rate limits of the public sign-up (page and API share the same counters)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage

from subscribers.models import email_hash


def signup_retry_after(request: HttpRequest, email: str) -> int | None:
    """Count this sign-up against the per-IP and per-address limits.

    Returns None while both allow it; else the seconds until every exceeded limit's window
    resets (the 429's Retry-After: a limit counted per hour lifts at its window's end, not in a
    minute). The address is counted by its hash, so the cache never holds it in clear.
    """
    usages = [
        get_usage(
            request,
            group="subscribers.signup.ip",
            key="ip",
            rate=settings.SUBSCRIBERS_SIGNUP_RATE_IP,
            increment=True,
        )
    ]
    if email:
        hashed = email_hash(email)
        usages.append(
            get_usage(
                request,
                group="subscribers.signup.email",
                key=lambda _group, _request: hashed,
                rate=settings.SUBSCRIBERS_SIGNUP_RATE_EMAIL,
                increment=True,
            )
        )
    # django-ratelimit's window still counts during its last whole second (time_left is 0
    # then): the limit lifts one second after. time_left is -1 when the cache could not count.
    waits = [
        max(int(usage["time_left"]) + 1, 1) for usage in usages if usage and usage["should_limit"]
    ]
    return max(waits) if waits else None


def signup_rate_limited(request: HttpRequest, email: str) -> bool:
    """``signup_retry_after`` as a yes/no: True when a limit is exceeded."""
    return signup_retry_after(request, email) is not None
