"""Throttle counting on the real shared cache (Redis): atomic, one pipelined round trip."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.test import Client

from config.api.throttles import KeyRateThrottle, hit
from publishing.api_keys import create_api_key
from tests.factories import UserFactory


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


@dataclass
class RedisCalls:
    pipelines: list[list[str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def clear(self) -> None:
        self.pipelines.clear()
        self.commands.clear()


@pytest.fixture
def redis_calls(redis_cache: None, monkeypatch: pytest.MonkeyPatch) -> RedisCalls:
    """What reaches Redis: each pipeline's commands, and the commands sent on their own."""
    import redis.client

    calls = RedisCalls()
    execute = redis.client.Pipeline.execute
    execute_command = redis.client.Redis.execute_command

    def spy_pipeline(pipeline: redis.client.Pipeline, raise_on_error: bool = True) -> object:
        calls.pipelines.append([str(command[0][0]) for command in pipeline.command_stack])
        return execute(pipeline, raise_on_error)

    def spy_command(client: redis.client.Redis, *args: object, **options: object) -> object:
        if not isinstance(client, redis.client.Pipeline):
            calls.commands.append(str(args[0]))
        return execute_command(client, *args, **options)

    monkeypatch.setattr(redis.client.Pipeline, "execute", spy_pipeline)
    monkeypatch.setattr(redis.client.Redis, "execute_command", spy_command)
    return calls


@pytest.mark.django_db
def test_a_keyed_api_request_is_one_redis_round_trip_once_its_key_is_cached(
    redis_calls: RedisCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = create_api_key(name="x", scopes=["publications:read"]).key
    monkeypatch.setattr(KeyRateThrottle, "rate", "3/min", raising=False)
    client = Client()

    def get() -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return client.get("/api/v1/topics/", headers=headers).status_code

    assert get() == 200
    # The key's snapshot was not cached yet: read from the database, then stored (SET NX).
    assert redis_calls.pipelines == [["GET", "INCRBY", "EXPIRE", "INCRBY", "EXPIRE"]]
    assert redis_calls.commands == ["SET"]
    redis_calls.clear()
    assert [get(), get(), get()] == [200, 200, 429]
    # Snapshot and both scopes' counters: one pipelined round trip per request, nothing else.
    assert redis_calls.pipelines == [["GET", "INCRBY", "EXPIRE", "INCRBY", "EXPIRE"]] * 3
    assert redis_calls.commands == []


@pytest.mark.django_db
def test_a_staff_session_counts_both_scopes_in_one_round_trip(
    redis_calls: RedisCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = UserFactory.create(is_staff=True)
    client = Client()
    client.force_login(staff)
    monkeypatch.setattr(KeyRateThrottle, "rate", "1/min", raising=False)
    redis_calls.clear()
    assert client.get("/api/v1/topics/").status_code == 200
    assert redis_calls.pipelines == [["INCRBY", "EXPIRE", "INCRBY", "EXPIRE"]]
    limited = client.get("/api/v1/topics/")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) >= 1
