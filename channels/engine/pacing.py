"""Pacing: a channel's shared rate limit (a GCRA in the database, decision 0036) and the hand-over
of messages to its backend, one slice at a time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import connection, transaction

from channels.backends.base import (
    Backend,
    Handover,
    Message,
    Outcome,
)
from channels.engine.stats import TimedBackend
from channels.models import RateBucket

logger = logging.getLogger(__name__)


def reserve_rate(channel_id: int, rate: float, count: int) -> float:
    """Reserve ``count`` sending slots of a channel limited to ``rate`` messages per second.

    The bucket is a GCRA in the database, shared by every worker: each reservation moves the
    channel's theoretical arrival time (``tat``) forward by count/rate, atomically, on the
    database's clock. Returns the seconds to wait before the first reserved slot; slot i
    starts i/rate seconds after it.
    """
    span = count / rate
    if connection.vendor == "postgresql":
        table = RateBucket._meta.db_table
        sql = f"""
            INSERT INTO {table} (channel_id, tat)
            VALUES (%s, EXTRACT(EPOCH FROM clock_timestamp())::float8 + %s)
            ON CONFLICT (channel_id) DO UPDATE
            SET tat = GREATEST({table}.tat, EXTRACT(EPOCH FROM clock_timestamp())::float8) + %s
            RETURNING tat, EXTRACT(EPOCH FROM clock_timestamp())::float8
        """  # noqa: S608 (table name from model metadata)
        with connection.cursor() as cursor:
            cursor.execute(sql, [channel_id, span, span])
            tat, db_now = cursor.fetchone()
        return max(0.0, float(tat) - span - float(db_now))
    # SQLite (development): writes are serialised by the database lock.
    with transaction.atomic():
        bucket, _ = RateBucket.objects.select_for_update().get_or_create(channel_id=channel_id)
        wall = time.time()
        start = max(bucket.tat, wall)
        bucket.tat = start + span
        bucket.save(update_fields=["tat"])
    return max(0.0, start - wall)


def _send_each(
    backend: Backend | TimedBackend,
    messages: Sequence[Message],
    handover: Handover | None,
) -> list[Outcome]:
    """Hand the messages to the backend; with ``handover`` (the sent journal), one at a time,
    reporting each hand-over and each answer before the next message goes (decision 0068)."""
    if handover is None:
        return list(backend.send(messages))
    return backend.send_each(messages, handover)


def send_paced(
    backend: Backend | TimedBackend,
    messages: Sequence[Message],
    rate: float | None,
    channel_id: int,
    sleep: Callable[[float], None] = time.sleep,
    handover: Handover | None = None,
) -> list[Outcome]:
    """Hand the messages to the backend, never faster than ``rate`` per second (if set)."""
    if not rate:
        return _send_each(backend, messages, handover)
    wait = reserve_rate(channel_id, rate, len(messages))
    slice_size = max(1, int(rate * settings.DELIVERY_RATE_SLICE_SECONDS))
    started = time.monotonic() + wait
    outcomes: list[Outcome] = []
    for offset in range(0, len(messages), slice_size):
        delay = started + offset / rate - time.monotonic()
        if delay > 0:
            sleep(delay)
        outcomes.extend(_send_each(backend, messages[offset : offset + slice_size], handover))
    return outcomes
