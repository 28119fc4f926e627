"""A redis-py client per cache backend, for the few places that talk to Redis directly."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache

_clients: dict[int, Any] = {}


def redis_client(cache: RedisCache) -> Any:
    """One redis-py client per cache backend and process (thread-safe and fork-aware).

    Django's Redis cache builds a new client object, with its table of response callbacks, on
    every call: about 100 µs, more than a round trip to Redis on loopback.
    """
    client = _clients.get(id(cache))
    if client is None:
        client = _clients[id(cache)] = cache._cache.get_client(write=True)
    return client
