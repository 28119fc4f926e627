"""django-q2 brokers that also record a heartbeat, so /readyz can tell a worker is polling,
wake the channels whose retries have become due (decision 0068) and relay recorded events
(decision 0084). On PostgreSQL the ORM broker's pusher waits for a notification of a new task
instead of sleeping between polls (decision 0091)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf

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


def notify_channel(list_key: str) -> str:
    """The PostgreSQL channel announcing new tasks of the queue ``list_key``."""
    return f"django_q:{list_key}"[:63]  # the longest identifier PostgreSQL keeps


class _Listener:
    """A connection of its own, LISTENing on a queue's channel (decision 0091)."""

    #: After a failed connection, the pusher polls this long before it tries again.
    RETRY_SECONDS = 10.0

    def __init__(self, list_key: str) -> None:
        self.channel = notify_channel(list_key)
        self._wrapper: Any = None
        self._pid = 0
        self._failed_at = float("-inf")

    def listening(self) -> bool:
        """Whether notifications are being received, LISTENing first when needed."""
        if self._wrapper is not None and self._pid == os.getpid():
            return True
        # A connection inherited through fork is the parent's: never used, never closed here.
        self._wrapper = None
        if time.monotonic() - self._failed_at < self.RETRY_SECONDS:
            return False
        wrapper = connections.create_connection(Conf.ORM)
        try:
            wrapper.ensure_connection()
            wrapper.set_autocommit(True)
            with wrapper.connection.cursor() as cursor:
                cursor.execute(f"LISTEN {wrapper.ops.quote_name(self.channel)}")
        except DatabaseError:
            logger.warning("The task queue cannot LISTEN: polling instead", exc_info=True)
            self._failed_at = time.monotonic()
            wrapper.close()
            return False
        self._wrapper, self._pid = wrapper, os.getpid()
        return True

    def wait(self, seconds: float) -> None:
        """Return at the first notification (draining the others) or after ``seconds``;
        on a lost connection, after sleeping ``seconds``, to LISTEN again next time."""
        connection = self._wrapper.connection
        try:
            for _ in connection.notifies(timeout=seconds, stop_after=1):
                break
            for _ in connection.notifies(timeout=0):
                pass
        except Exception:  # the database is a boundary: polling goes on without it
            logger.warning("The task queue's LISTEN connection failed", exc_info=True)
            self.close()
            self._failed_at = time.monotonic()
            time.sleep(seconds)

    def close(self) -> None:
        if self._wrapper is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._wrapper.close()
        self._wrapper = None


class HeartbeatORM(ORM):
    """django-q2's ORM broker. On PostgreSQL an enqueued task is announced with NOTIFY (sent
    when its transaction commits, with the task's row) and the pusher, with an empty queue,
    waits for that announcement up to Q_NOTIFY_WAIT_SECONDS instead of sleeping Q_CLUSTER's
    ``poll``: a task is taken within milliseconds and an idle cluster polls less. It still
    polls at least every Q_NOTIFY_WAIT_SECONDS, which finds tasks whose lock expired."""

    def __init__(self, list_key: str | None = None) -> None:
        super().__init__(list_key=list_key)
        self._listener = _Listener(self.list_key)

    @staticmethod
    def _listens() -> bool:
        return bool(connections[Conf.ORM].vendor == "postgresql")

    def enqueue(self, task: Any) -> Any:
        pk = super().enqueue(task)
        if self._listens():
            with connections[Conf.ORM].cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [notify_channel(self.list_key)])
        return pk

    def dequeue(self) -> Any:
        _between_polls()
        if not self._listens() or not self._listener.listening():
            return super().dequeue()
        # LISTEN came first: a task committed after this read is announced to the wait.
        tasks = self._take()
        if tasks:
            return tasks
        self._listener.wait(settings.Q_NOTIFY_WAIT_SECONDS)
        return None

    def _take(self) -> list[tuple[int, str]]:
        """django-q2's ORM dequeue without its sleep: up to BULK tasks whose lock has passed,
        each locked anew unless another cluster was faster."""
        queue = self.get_connection()
        taken = []
        for task in queue.filter(key=self.list_key, lock__lt=timezone.now())[: Conf.BULK]:
            if queue.filter(id=task.id, lock=task.lock).update(lock=self.timeout(task)):
                taken.append((task.pk, task.payload))
        return taken


class HeartbeatRedis(Redis):
    def dequeue(self) -> Any:
        _between_polls()
        return super().dequeue()
