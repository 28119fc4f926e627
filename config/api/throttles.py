"""Rate limits per API key (or staff user) and per client IP, counted in the shared cache.

Each limit is a fixed-window counter: one atomic ``INCR`` (with its expiry, pipelined) per
request and scope on Redis, instead of DRF's default list of timestamps read and written back
(two round trips, a pickled list, and a lost update when two processes race). A window allows at
most the rate's count; at a window's edge a client may get up to twice the rate over the two
halves (decision 0008).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from config.cache import redis_client

if TYPE_CHECKING:
    from rest_framework.views import APIView


def hit(key: str, ttl: int) -> int:
    """Count one request under ``key`` (which expires after ``ttl`` seconds); return the count."""
    cache = caches["default"]  # the backend itself: django.core.cache.cache is a proxy
    if isinstance(cache, RedisCache):
        full_key = cache.make_and_validate_key(key)
        pipeline = redis_client(cache).pipeline(transaction=False)
        pipeline.incr(full_key)
        pipeline.expire(full_key, ttl)
        count, _ = pipeline.execute()
        return int(count)
    cache.add(key, 0, timeout=ttl)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1


class WindowRateThrottle(SimpleRateThrottle):
    """DRF's rate syntax ("600/min") and cache keys, counted by ``hit`` in fixed windows."""

    _wait: float = 0.0
    num_requests: int | None
    duration: int | None

    def allow_request(self, request: Request, view: APIView) -> bool:
        if self.rate is None or self.num_requests is None or self.duration is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        count = hit(f"{key}:{window}", self.duration + 1)
        self._wait = (window + 1) * self.duration - now
        return bool(count <= self.num_requests)

    def wait(self) -> float | None:
        return max(self._wait, 1.0)


class KeyRateThrottle(WindowRateThrottle):
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


class IPRateThrottle(WindowRateThrottle):
    """Requests per client IP, whoever sends them."""

    scope = "api_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
