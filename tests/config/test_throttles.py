"""Throttle counting on the real shared cache (Redis): atomic, one pipelined round trip."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings

from config.api.throttles import hit

REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def redis_cache() -> Iterator[None]:
    settings = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        }
    }
    with override_settings(CACHES=settings):
        try:
            cache.get("ping")
        except Exception as error:  # pragma: no cover - depends on the machine
            pytest.skip(f"Redis not reachable at {REDIS}: {error}")
        yield
        cache.clear()


def test_counts_from_many_threads_are_never_lost_on_redis(redis_cache: None) -> None:
    key = "throttle:test:ident:1"

    def hammer() -> None:
        for _ in range(50):
            hit(key, 60)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get(key) == 400
    assert hit(key, 60) == 401


def test_a_counter_is_one_pipelined_round_trip_and_expires_with_its_window_on_redis(
    redis_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.client

    sent: list[list[str]] = []
    execute = redis.client.Pipeline.execute

    def spy(pipeline: redis.client.Pipeline, raise_on_error: bool = True) -> object:
        sent.append([str(command[0][0]) for command in pipeline.command_stack])
        return execute(pipeline, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", spy)
    assert hit("throttle:test:ident:2", 7) == 1
    assert sent == [["INCRBY", "EXPIRE"]]
    full_key = cache.make_and_validate_key("throttle:test:ident:2")
    client = cache._cache.get_client(full_key)
    assert 0 < client.ttl(full_key) <= 7


def test_the_local_memory_fallback_counts_too() -> None:
    assert [hit("throttle:local:1", 60) for _ in range(3)] == [1, 2, 3]
