"""Rate limits per API key (or staff user) and per client IP, counted in the shared cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

if TYPE_CHECKING:
    from rest_framework.views import APIView


class KeyRateThrottle(SimpleRateThrottle):
    """Requests per API key; staff sessions count per user. Anonymous requests are not counted
    here (IPRateThrottle covers them)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        api_key = getattr(request, "auth", None)
        if api_key is not None and getattr(api_key, "pk", None) is not None:
            ident = f"key-{api_key.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            return None
        return self.cache_format % {"scope": self.scope, "ident": ident}


class IPRateThrottle(SimpleRateThrottle):
    """Requests per client IP, whoever sends them."""

    scope = "api_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
