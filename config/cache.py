"""A redis-py client per cache backend, for the few places that talk to Redis directly."""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
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


# JSON values in the default cache, through one redis-py client on Redis (the request path's
# lookups: about 0.1 ms instead of 0.2 ms through Django's cache API), through the cache API on
# the other backends (local memory in development and tests).


def _default() -> BaseCache:
    return caches["default"]  # the backend itself: django.core.cache.cache is a proxy


def cache_get_json(key: str) -> Any:
    """The JSON value stored under ``key``, or None."""
    cache = _default()
    if isinstance(cache, RedisCache):
        raw = redis_client(cache).get(cache.make_and_validate_key(key))
    else:
        raw = cache.get(key)
    return None if raw is None else json.loads(raw)


def cache_add_json(key: str, value: Any, ttl: int) -> bool:
    """Store ``value`` under ``key`` for ``ttl`` seconds unless the key exists (Redis SET NX).
    Returns whether it was stored."""
    cache = _default()
    encoded = json.dumps(value, separators=(",", ":"))
    if isinstance(cache, RedisCache):
        client = redis_client(cache)
        return bool(client.set(cache.make_and_validate_key(key), encoded, nx=True, ex=ttl))
    return bool(cache.add(key, encoded, timeout=ttl))


def cache_set_json(key: str, value: Any, ttl: int) -> None:
    """Store ``value`` under ``key`` for ``ttl`` seconds, replacing what was there."""
    cache = _default()
    encoded = json.dumps(value, separators=(",", ":"))
    if isinstance(cache, RedisCache):
        redis_client(cache).set(cache.make_and_validate_key(key), encoded, ex=ttl)
    else:
        cache.set(key, encoded, timeout=ttl)
