"""On PostgreSQL a pusher with an empty queue waits for a new task's NOTIFY, not for its next
poll (decision 0091): a task is taken within moments of its commit, and not before it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django_q.models import OrmQ

from channels import broker as broker_module
from channels.broker import HeartbeatORM, notify_channel

pytestmark = pytest.mark.django_db(transaction=True)

#: Longer than any wait the tests accept: a task taken sooner was announced, not polled.
WAIT = 8.0


class Pusher:
    """django-q2's pusher loop on a thread of its own (own database connection): dequeue until
    a task is taken or ``stop`` is set."""

    def __init__(self, list_key: str) -> None:
        self.broker = HeartbeatORM(list_key=list_key)
        self.taken: list[tuple[int, str]] = []
        self.taken_at = 0.0
        self.polls = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        try:
            while not self.stop.is_set() and not self.taken:
                self.polls += 1
                tasks = self.broker.dequeue()
                if tasks:
                    self.taken_at = time.monotonic()
                    self.taken.extend(tasks)
        finally:
            self.broker._listener.close()
            connection.close()

    def __enter__(self) -> Pusher:
        self.thread.start()
        # Its first dequeue has LISTENed and found the queue empty.
        deadline = time.monotonic() + 5
        while self.polls == 0 or self.broker._listener._wrapper is None:
            assert time.monotonic() < deadline, "the pusher did not start listening"
            time.sleep(0.01)
        time.sleep(0.1)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=WAIT + 5)


@pytest.fixture
def listening(settings: Any) -> Iterator[None]:
    settings.Q_NOTIFY_WAIT_SECONDS = WAIT
    settings.DELIVERY_WAKE_SECONDS = 0  # no wake-up query between polls
    yield


def test_a_task_is_taken_at_once_not_at_the_next_poll(listening: None) -> None:
    with Pusher("notify-now") as pusher:
        enqueued_at = time.monotonic()
        pk = HeartbeatORM(list_key="notify-now").enqueue("payload")
        pusher.thread.join(timeout=WAIT + 5)

    assert [task_pk for task_pk, _ in pusher.taken] == [pk]
    assert pusher.taken_at - enqueued_at < 1.0  # the wait is 8 s


def test_a_task_enqueued_in_a_transaction_is_announced_when_it_commits(
    listening: None,
) -> None:
    with Pusher("notify-commit") as pusher:
        with transaction.atomic():
            HeartbeatORM(list_key="notify-commit").enqueue("kept")
            time.sleep(0.5)
            assert not pusher.taken  # neither the row nor its NOTIFY is visible yet
            committed_at = time.monotonic()
        pusher.thread.join(timeout=WAIT + 5)

    assert [payload for _, payload in pusher.taken] == ["kept"]
    assert pusher.taken_at - committed_at < 1.0


def test_a_rolled_back_enqueue_announces_nothing(listening: None) -> None:
    with Pusher("notify-rollback") as pusher:
        polls = pusher.polls
        with transaction.atomic():
            HeartbeatORM(list_key="notify-rollback").enqueue("dropped")
            transaction.set_rollback(True)
        time.sleep(1.0)
        assert pusher.polls == polls  # still waiting: no notification woke it

    assert not pusher.taken
    assert not OrmQ.objects.filter(key="notify-rollback").exists()


def test_the_pusher_listens_again_after_its_connection_is_lost(
    listening: None, caplog: pytest.LogCaptureFixture
) -> None:
    broker_module._Listener.RETRY_SECONDS = 0.0
    try:
        with Pusher("notify-lost") as pusher:
            listener = pusher.broker._listener
            lost = listener._wrapper
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(%s)", [lost.connection.info.backend_pid]
                )
            # The wait fails, sleeps its 8 s, then LISTENs on a new connection. The new one is
            # told apart by identity, not by pid: libpq reads a broken connection's pid as 0,
            # which differs from the old pid while the pusher still sleeps.
            deadline = time.monotonic() + WAIT + 5
            while listener._wrapper is None or listener._wrapper is lost:
                assert time.monotonic() < deadline, "no new LISTEN connection"
                time.sleep(0.05)
            time.sleep(0.1)
            enqueued_at = time.monotonic()
            HeartbeatORM(list_key="notify-lost").enqueue("after")
            pusher.thread.join(timeout=WAIT + 5)
    finally:
        broker_module._Listener.RETRY_SECONDS = 10.0

    assert [payload for _, payload in pusher.taken] == ["after"]
    assert pusher.taken_at - enqueued_at < 1.0
    assert "LISTEN connection failed" in caplog.text


def test_an_idle_pusher_reads_the_queue_once_per_wait(settings: Any) -> None:
    settings.Q_NOTIFY_WAIT_SECONDS = 0.5
    settings.DELIVERY_WAKE_SECONDS = 0
    broker = HeartbeatORM(list_key="notify-idle")
    try:
        with CaptureQueriesContext(connection) as captured:
            started = time.monotonic()
            while time.monotonic() - started < 2.0:
                assert broker.dequeue() is None
    finally:
        broker._listener.close()
    reads = [q for q in captured.captured_queries if "django_q_ormq" in q["sql"]]
    # Four or five waits of 0.5 s in 2 s; Q_CLUSTER's poll (0.2 s) would read ten times.
    assert 4 <= len(reads) <= 5, len(reads)


def test_the_channel_is_a_postgresql_identifier_of_the_queue() -> None:
    assert notify_channel("publishing") == "django_q:publishing"
    assert len(notify_channel("x" * 100)) == 63
