"""django-q2 brokers that also record a heartbeat, so /readyz can tell a worker is polling."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis

_last_beat = 0.0


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


class HeartbeatORM(ORM):
    def dequeue(self) -> Any:
        beat()
        return super().dequeue()


class HeartbeatRedis(Redis):
    def dequeue(self) -> Any:
        beat()
        return super().dequeue()
