"""Rate limits of the public sign-up (page and API share the same counters)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import is_ratelimited

from subscribers.models import email_hash


def signup_rate_limited(request: HttpRequest, email: str) -> bool:
    """Count this sign-up against the per-IP and per-address limits; True when one is exceeded.

    The address is counted by its hash, so the cache never holds it in clear.
    """
    ip_limited = is_ratelimited(
        request,
        group="subscribers.signup.ip",
        key="ip",
        rate=settings.SUBSCRIBERS_SIGNUP_RATE_IP,
        increment=True,
    )
    email_limited = False
    if email:
        hashed = email_hash(email)
        email_limited = is_ratelimited(
            request,
            group="subscribers.signup.email",
            key=lambda _group, _request: hashed,
            rate=settings.SUBSCRIBERS_SIGNUP_RATE_EMAIL,
            increment=True,
        )
    return bool(ip_limited or email_limited)
