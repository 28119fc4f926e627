"""Throttle counting on the real shared cache (Redis): atomic, one pipelined round trip."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.test import Client

from config.api.throttles import KeyRateThrottle, hit
from publishing.api_keys import create_api_key


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


@pytest.mark.django_db
def test_an_api_request_counts_every_scope_in_one_round_trip_on_redis(
    redis_cache: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.client

    key = create_api_key(name="x", scopes=["publications:read"]).key
    sent: list[list[str]] = []
    execute = redis.client.Pipeline.execute

    def spy(pipeline: redis.client.Pipeline, raise_on_error: bool = True) -> object:
        sent.append([str(command[0][0]) for command in pipeline.command_stack])
        return execute(pipeline, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", spy)
    monkeypatch.setattr(KeyRateThrottle, "rate", "2/min", raising=False)
    client = Client()
    statuses = [
        client.get("/api/v1/topics/", headers={"Authorization": f"Bearer {key}"}).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]
    assert sent == [["INCRBY", "EXPIRE", "INCRBY", "EXPIRE"]] * 3
