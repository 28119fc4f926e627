"""The admin shows times in the editor's own time zone.

The browser knows it (``Intl.DateTimeFormat().resolvedOptions().timeZone``): a few lines of
JavaScript on every admin page (publishing/static/publishing/admin/timezone.js) keep it in a
cookie whose path is the admin's, and this middleware activates it for the request, so Django
shows and reads every admin date in that zone (the schedule form included) and names it. No
cookie, or a name that is not an IANA zone: settings.TIME_ZONE (UTC). Decision 0076.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

#: The cookie timezone.js sets; its path is the admin's, so public pages never see it.
COOKIE_NAME = "admin_tz"
MAX_ZONE_LENGTH = 64


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_named(name: str | None) -> zoneinfo.ZoneInfo | None:
    """The IANA zone ``name`` names, or None for anything else (never a file path)."""
    if not name or len(name) > MAX_ZONE_LENGTH or name not in _zones():
        return None
    return zoneinfo.ZoneInfo(name)


class AdminTimezoneMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = zone_named(request.COOKIES.get(COOKIE_NAME))
        if zone is None:
            return self.get_response(request)
        timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
