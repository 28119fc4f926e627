"""Rate limits per API key (or staff user) and per client IP, counted in the shared cache.

Each limit is a fixed-window counter: one atomic ``INCR`` (with its expiry) per request and
scope on Redis, every scope's counter in one pipelined round trip (``refusals``), instead of
DRF's default list of timestamps read and written back (two round trips per scope, a pickled
list, and a lost update when two processes race). A window allows at
most the rate's count; at a window's edge a client may get up to twice the rate over the two
halves (decision 0008).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from config.api.prefetch import bearer_prefix, prefetched
from config.cache import redis_client

if TYPE_CHECKING:
    from rest_framework.views import APIView


def queue_hits(pipeline: Any, cache: RedisCache, keys: Sequence[tuple[str, int]]) -> None:
    """Add to a Redis pipeline the commands counting one request under each ``(key, ttl)``:
    an INCR and an EXPIRE each, so every other reply from there on is a count."""
    for key, ttl in keys:
        full_key = cache.make_and_validate_key(key)
        pipeline.incr(full_key)
        pipeline.expire(full_key, ttl)


def hit_many(keys: Sequence[tuple[str, int]]) -> list[int]:
    """Count one request under each ``(key, ttl)`` (the key expires after ``ttl`` seconds);
    return the counts. On Redis, one pipelined round trip for all of them."""
    cache = caches["default"]  # the backend itself: django.core.cache.cache is a proxy
    if isinstance(cache, RedisCache):
        pipeline = redis_client(cache).pipeline(transaction=False)
        queue_hits(pipeline, cache, keys)
        return [int(count) for count in pipeline.execute()[::2]]
    counts = []
    for key, ttl in keys:
        cache.add(key, 0, timeout=ttl)
        try:
            counts.append(int(cache.incr(key)))
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=ttl)
            counts.append(1)
    return counts


def hit(key: str, ttl: int) -> int:
    """Count one request under ``key``; return the count."""
    return hit_many([(key, ttl)])[0]


class WindowRateThrottle(SimpleRateThrottle):
    """DRF's rate syntax ("600/min") and cache keys, counted in fixed windows."""

    _wait: float = 0.0
    num_requests: int | None
    duration: int | None

    def window(self, request: Request, view: APIView, now: float) -> tuple[str, int] | None:
        """The counter this request goes into and its time to live, or None if not counted."""
        if self.rate is None or self.num_requests is None or self.duration is None:
            return None
        key = self.get_cache_key(request, view)
        if key is None:
            return None
        window = int(now // self.duration)
        self._wait = (window + 1) * self.duration - now
        return f"{key}:{window}", self.duration + 1

    def allows(self, count: int) -> bool:
        return self.num_requests is None or count <= self.num_requests

    def allow_request(self, request: Request, view: APIView) -> bool:
        counter = self.window(request, view, time.time())
        return counter is None or self.allows(hit(*counter))

    def wait(self) -> float | None:
        return max(self._wait, 1.0)


def refusals(throttles: Iterable[BaseThrottle], request: Request, view: APIView) -> list[float]:
    """Count the request in every throttle, the window throttles' counters in one round trip;
    return the waits (seconds) of those that refuse it."""
    now = time.time()
    known = found.counts if (found := prefetched(request)) is not None else {}
    counted: list[tuple[WindowRateThrottle, tuple[str, int]]] = []
    waits: list[float] = []
    for throttle in throttles:
        if isinstance(throttle, WindowRateThrottle):
            counter = throttle.window(request, view, now)
            if counter is not None:
                counted.append((throttle, counter))
        elif not throttle.allow_request(request, view):
            waits.append(throttle.wait() or 1.0)
    # Counters the prefetch already counted (the same window) are not counted twice.
    missing = [counter for _, counter in counted if counter[0] not in known]
    counts = (
        dict(zip((key for key, _ in missing), hit_many(missing), strict=True)) if missing else {}
    )
    for throttle, (key, _) in counted:
        count = known[key] if key in known else counts[key]
        if not throttle.allows(count):
            waits.append(throttle.wait() or 1.0)
    return waits


class KeyRateThrottle(WindowRateThrottle):
    """Requests per API key (named by its visible prefix, known before the key is checked);
    staff sessions count per user. Anonymous requests are not counted here (IPRateThrottle
    covers them)."""

    scope = "api_key"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        prefix = bearer_prefix(request)
        if prefix is not None:
            ident = f"key-{prefix}"
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
