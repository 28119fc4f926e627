"""The event buffer: open and click hits appended to a Redis list by the web process, moved into
the event table in bulk by the classifier's task (decision 0078).

A tracking request then costs one RPUSH (tens of microseconds) instead of a database statement,
and the database takes a few thousand events per INSERT instead of one. ``ENGAGEMENT_BUFFER_URL``
names the Redis (default: ``REDIS_URL``); empty, each hit is inserted at once (SQLite, no Redis).
A hit Redis refuses is inserted at once too: the buffer never loses what it could not take.

Moving: the list's head is read (LRANGE), inserted, then dropped (LTRIM), under a lock so that
one worker moves at a time. Each buffered event carries a random key that the table holds
unique, so a worker that dies between the insert and the trim makes the next one insert those
events again for nothing (ON CONFLICT DO NOTHING), never twice. The keys are per database
(several databases may share one Redis).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from datetime import datetime
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings
from django.db import connection

from channels.models import Delivery, EngagementEvent

logger = logging.getLogger(__name__)

LOCK_SECONDS = 60
MOVE_BATCH = 5000


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # A Redis that hangs must cost a tracking request a short wait, then the direct insert.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)


def client() -> redis.Redis | None:
    url = str(getattr(settings, "ENGAGEMENT_BUFFER_URL", "") or "")
    return _client(url) if url else None


def _key(suffix: str) -> str:
    database = str(connection.settings_dict.get("NAME") or "")
    return f"engagement:{hashlib.sha256(database.encode()).hexdigest()[:12]}:{suffix}"


def push(row: list[Any]) -> bool:
    """Append one hit ``[delivery_id, kind, link_index, occurred_at ISO, method, user agent,
    ip]``; False when there is no buffer or Redis refused (the caller inserts it then)."""
    redis_client = client()
    if redis_client is None:
        return False
    try:
        redis_client.rpush(_key("events"), json.dumps([*row, secrets.token_hex(8)]))
    except redis.RedisError as error:
        logger.warning("engagement: buffer unavailable, event written directly: %s", error)
        return False
    return True


def pending() -> int:
    """Events waiting in the buffer (0 without one)."""
    redis_client = client()
    return int(redis_client.llen(_key("events"))) if redis_client is not None else 0


def move(limit: int = MOVE_BATCH) -> int:
    """Move up to ``limit`` buffered events into the table; returns how many were read.

    Events of deliveries that no longer exist are dropped (as the direct insert does).
    """
    redis_client = client()
    if redis_client is None:
        return 0
    lock = _key("move-lock")
    token = secrets.token_hex(8)
    if not redis_client.set(lock, token, nx=True, ex=LOCK_SECONDS):
        return 0
    try:
        raw = redis_client.lrange(_key("events"), 0, limit - 1)
        if not raw:
            return 0
        rows = [json.loads(item) for item in raw]
        existing = set(
            Delivery.objects.filter(pk__in={row[0] for row in rows}).values_list("pk", flat=True)
        )
        EngagementEvent.objects.bulk_create(
            [
                EngagementEvent(
                    delivery_id=delivery_id,
                    kind=kind,
                    link_index=link_index,
                    occurred_at=datetime.fromisoformat(occurred_at),
                    method=method,
                    user_agent=user_agent,
                    ip=ip,
                    key=key,
                )
                for delivery_id, kind, link_index, occurred_at, method, user_agent, ip, key in rows
                if delivery_id in existing
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        redis_client.ltrim(_key("events"), len(raw), -1)
        return len(raw)
    finally:
        if redis_client.get(lock) == token.encode():
            redis_client.delete(lock)
