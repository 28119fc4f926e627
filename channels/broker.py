"""django-q2 brokers that also record a heartbeat, so /readyz can tell a worker is polling,
wake the channels whose retries have become due (decision 0068) and relay recorded events
(decision 0084)."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis

logger = logging.getLogger(__name__)

_last_beat = 0.0
#: The end of the window the last wake-up looked at (decision 0068); None before the first.
_woken_until: datetime | None = None
#: When this process last relayed events (time.monotonic()).
_relayed_at = float("-inf")


def beat() -> None:
    """Record this process's heartbeat, at most once per WORKER_HEARTBEAT_INTERVAL seconds."""
    global _last_beat
    now = time.monotonic()
    if now - _last_beat < settings.WORKER_HEARTBEAT_INTERVAL:
        return
    from channels.models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        name=f"{socket.gethostname()}:{os.getppid()}", defaults={"seen_at": timezone.now()}
    )
    _last_beat = now


def wake() -> int:
    """Enqueue batches for the channels whose retries became due since the last call, at most
    once per DELIVERY_WAKE_SECONDS (channels.engine.queue.wake_due_channels). The first call looks
    back DELIVERY_SWEEP_STALE_SECONDS; anything older is the sweeper's. Returns the tasks
    enqueued."""
    global _woken_until
    interval = settings.DELIVERY_WAKE_SECONDS
    now = timezone.now()
    if interval <= 0 or (
        _woken_until is not None and (now - _woken_until).total_seconds() < interval
    ):
        return 0
    from channels.engine.queue import wake_due_channels

    since = _woken_until or now - timedelta(seconds=settings.DELIVERY_SWEEP_STALE_SECONDS)
    _woken_until = now
    return wake_due_channels(since, now)


def relay() -> int:
    """Relay the events recorded since the last relay (decision 0084), at most once per
    DELIVERY_WAKE_SECONDS: the recorders' hints are skipped within a second of each other,
    so the last events of a burst are relayed here. Returns the deliveries created."""
    global _relayed_at
    interval = settings.DELIVERY_WAKE_SECONDS
    now = time.monotonic()
    if interval <= 0 or now - _relayed_at < interval:
        return 0
    _relayed_at = now
    from channels.engine.relay import relay_events

    return relay_events()


def _between_polls() -> None:
    beat()
    try:
        wake()
    except Exception:  # a worker boundary: polling must go on; the sweeper is the fallback
        logger.exception("Waking the channels with due retries failed")
    try:
        relay()
    except Exception:  # the same boundary; the sweeper relays too
        logger.exception("Relaying recorded events failed")


class HeartbeatORM(ORM):
    def dequeue(self) -> Any:
        _between_polls()
        return super().dequeue()


class HeartbeatRedis(Redis):
    def dequeue(self) -> Any:
        _between_polls()
        return super().dequeue()
