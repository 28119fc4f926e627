"""One Redis round trip before a keyed API request is handled: the key's cached snapshot
(decision 0054) and every throttle's counter (decision 0008), pipelined together.

Without it a request makes two round trips (the snapshot's ``GET``, then the counters); on a
machine whose cores the web workers share with Redis, each costs more than its few microseconds
on the wire. Only requests with a bearer key on a Redis cache are prefetched; the others take
the ordinary path, which gives the same answers.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request

from config.api.keys import api_keys
from config.cache import redis_client

if TYPE_CHECKING:
    from rest_framework.views import APIView

ATTRIBUTE = "_api_prefetched"


@dataclass
class Prefetched:
    #: The key's snapshot as stored (None: nothing cached).
    snapshot: Any
    #: Counter key -> count after this request, for the throttles.
    counts: dict[str, int] = field(default_factory=dict)


def bearer_prefix(request: Request) -> str | None:
    """The visible prefix of the request's bearer key, if it has the shape of one."""
    scheme, _, key = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    return api_keys().prefix_of(key) if scheme.lower() == "bearer" else None


def prefetched(request: Request) -> Prefetched | None:
    value = request.__dict__.get(ATTRIBUTE)
    return value if isinstance(value, Prefetched) else None


def prefetch(request: Request, view: APIView) -> None:
    """Read the bearer key's snapshot and count the request in every window throttle, in one
    pipelined round trip; the authentication and the throttles then use what it read."""
    from config.api.throttles import WindowRateThrottle, queue_hits

    cache = caches["default"]
    prefix = bearer_prefix(request)
    if prefix is None or not isinstance(cache, RedisCache):
        return
    now = time.time()
    counters = [
        counter
        for throttle in view.get_throttles()
        if isinstance(throttle, WindowRateThrottle)
        and (counter := throttle.window(request, view, now)) is not None
    ]
    pipeline = redis_client(cache).pipeline(transaction=False)
    pipeline.get(cache.make_and_validate_key(api_keys().snapshot_cache_key(prefix)))
    queue_hits(pipeline, cache, counters)
    raw, *replies = pipeline.execute()
    counts = {key: int(count) for (key, _), count in zip(counters, replies[::2], strict=True)}
    snapshot = None if raw is None else json.loads(raw)
    request.__dict__[ATTRIBUTE] = Prefetched(snapshot=snapshot, counts=counts)
