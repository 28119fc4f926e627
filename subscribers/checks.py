"""System checks: refuse malformed subscriber settings at start-up, naming the variable."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error

RATE = re.compile(r"\d+/\d*[smhd]")
MINIMUMS = {
    "SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS": 1,
    "SUBSCRIBERS_SIGNUP_EMAILS_PER_DAY": 1,
    "SUBSCRIBERS_IMPORT_BATCH_SIZE": 1,
    "SUBSCRIBERS_IMPORT_WORKERS": 1,
}


def check_subscriber_settings(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for name in ("SUBSCRIBERS_SIGNUP_RATE_IP", "SUBSCRIBERS_SIGNUP_RATE_EMAIL"):
        value = getattr(settings, name)
        if not isinstance(value, str) or not RATE.fullmatch(value):
            errors.append(
                Error(
                    f"{name}={value!r} is not a rate such as 20/h (count/period, period one "
                    "of s, m, h, d, optionally with a number: 5/10m).",
                    id="subscribers.E001",
                )
            )
    for name, minimum in MINIMUMS.items():
        value = getattr(settings, name)
        if not isinstance(value, int) or value < minimum:
            errors.append(Error(f"{name} must be at least {minimum}.", id="subscribers.E002"))
    return errors
