"""Crash safety with a real django-q2 cluster: SIGKILL mid-batch, SECRET_KEY rotation."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.controller import Controller
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from channels import journal, services
from channels.models import Channel, Delivery
from publishing.models import Dispatch, Topic
from tests.channels.cluster import Cluster, running_cluster, wait_for
from tests.channels.conftest import (
    SmtpSink,
    add_subscribers,
    free_port,
    make_dispatch,
    make_smtp_channel,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

NEW_SECRET_KEY = "rotated-" + "k" * 60
#: The Redis the workers, the killed one included, and this process share the sent journal in.
#: Keys carry the test database's name, so parallel runs on other databases do not collide.
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
BATCH_SIZE = 50
MESSAGE_ID = re.compile(rb"^Message-ID: <delivery-(\d+)@", re.MULTILINE | re.IGNORECASE)
RECIPIENTS = 2000


@pytest.fixture
def queue_for_real(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[None]:
    """This process enqueues into the ORM broker (the cluster runs the tasks), and the sweeper
    treats work as stale after a second, as a scheduled sweep would after its delay."""
    monkeypatch.setattr(Conf, "SYNC", False)
    settings.DELIVERY_SWEEP_STALE_SECONDS = 1
    yield


def _clear_journal() -> None:
    pattern = f"{journal.KEY_PREFIX}:*:{journal._key(0)[:-2]}:*"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_journal(settings: Any) -> Iterator[dict[str, str]]:
    """The sent journal on Redis for this process; returns the workers' environment for it."""
    settings.DELIVERY_JOURNAL_URL = REDIS_URL
    _clear_journal()
    yield {"REDIS_URL": REDIS_URL, "DELIVERY_JOURNAL_URL": REDIS_URL}
    _clear_journal()


class HoldingSink(SmtpSink):
    """The SMTP sink, which also counts messages per SMTP session (the engine opens one per
    batch), signals once a session is part-way through a batch after ``kill_after`` messages,
    and, while ``holding``, leaves every RCPT unanswered: a worker waiting there has no
    message between the provider's acceptance and the journal write."""

    def message_ids(self) -> Counter[int]:
        """How many times the sink received each delivery, by its Message-ID header."""
        return Counter(int(m.group(1)) for m in map(MESSAGE_ID.search, self.messages) if m)

    def __init__(self) -> None:
        super().__init__()
        self.holding = False
        self.kill_after: int | None = None
        self.mid_batch = threading.Event()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        while self.holding:
            await asyncio.sleep(0.01)
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        session.in_batch = getattr(session, "in_batch", 0) + 1
        if (
            self.kill_after is not None
            and len(self.messages) >= self.kill_after
            and 10 <= session.in_batch <= BATCH_SIZE - 10
        ):
            self.mid_batch.set()
        return reply


@pytest.fixture(params=[False, True], ids=["one-command-at-a-time", "pipelining"])
def holding_sink(request: pytest.FixtureRequest) -> Iterator[tuple[HoldingSink, int]]:
    """The sink with and without PIPELINING: pipelined, each next envelope (held at its RCPT)
    leaves with the content before it (decision 0067)."""
    sink = HoldingSink()
    sink.pipelining = request.param
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield sink, port
    finally:
        sink.holding = False
        controller.stop()


def sweep_until_settled(dispatches: list[Dispatch], timeout: float) -> None:
    """Run the sweeper every second, as its schedule would, until every dispatch is done."""
    ids = [d.pk for d in dispatches]

    def settled() -> bool:
        services.sweep()
        return not Dispatch.objects.filter(pk__in=ids).exclude(status="done").exists()

    wait_for(settled, timeout=timeout, every=1.0)


def kill_mid_batch_and_recover(
    topic: Topic,
    sink: HoldingSink,
    cluster: Cluster,
    kill_after: int,
    log: Path,
    env: dict[str, str],
    started: float,
) -> Cluster:
    """Send a 2,000-recipient dispatch, SIGKILL ``cluster`` once the sink has received
    ``kill_after`` of its messages and a batch is part-sent, recover with a new cluster
    (returned, still running), and check every message arrived exactly once."""
    dispatch = make_dispatch(topic)
    sink.mid_batch.clear()
    sink.kill_after = len(sink.messages) + kill_after
    async_task(services.PLAN_DISPATCH_TASK, dispatch.pk)
    try:
        assert sink.mid_batch.wait(timeout=40), "the dispatch never reached the kill point"
        # Hold every worker at its next RCPT, so none is between the sink's "250" and its
        # journal write, then kill them all while their batches are part-sent.
        sink.holding = True
        time.sleep(0.3)
    finally:
        cluster.kill()
        sink.kill_after = None
        sink.holding = False
    in_flight = set(
        Delivery.objects.filter(dispatch=dispatch, status="sending").values_list("pk", flat=True)
    )
    accepted_unrecorded = in_flight & set(sink.delivery_ids())
    sent_before = Delivery.objects.filter(dispatch=dispatch, status="sent").count()
    assert 0 < sent_before < RECIPIENTS, "the kill must land in the middle of the dispatch"
    assert accepted_unrecorded, "the kill must land after the sink accepted part of a batch"
    assert in_flight - accepted_unrecorded, "... and before the batch was all sent"

    recovering = Cluster(log, **env)
    recovering.start()
    try:
        sweep_until_settled([dispatch], timeout=45)

        rows = Delivery.objects.filter(dispatch=dispatch)
        assert rows.count() == RECIPIENTS
        assert set(rows.values_list("status", flat=True)) == {"sent"}
        ids = set(rows.values_list("pk", flat=True))
        # Exactly once, by X-Delivery-ID and by Message-ID; the provider ids of the messages
        # accepted but unrecorded at the kill came back from the journal into the ledger.
        received = sink.delivery_ids()
        assert {pk: received[pk] for pk in ids} == dict.fromkeys(ids, 1)
        message_ids = sink.message_ids()
        assert {pk: message_ids[pk] for pk in ids} == dict.fromkeys(ids, 1)
        assert not rows.filter(pk__in=accepted_unrecorded, provider_message_id="").exists()
        print(  # noqa: T201 (reported in the test output on purpose)
            f"\ncrash test: killed after {sent_before} recorded, {len(in_flight)} in flight of "
            f"which {len(accepted_unrecorded)} accepted, all {RECIPIENTS} received once, "
            f"{time.monotonic() - started:.1f} s"
        )
    except BaseException:
        recovering.stop()
        raise
    return recovering


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
    transactional_db: None,
    topic: Topic,
    holding_sink: tuple[HoldingSink, int],
    queue_for_real: None,
    redis_journal: dict[str, str],
    output_dir: Path,
) -> None:
    sink, port = holding_sink
    make_smtp_channel(port, batch_size=BATCH_SIZE)
    add_subscribers(topic, RECIPIENTS)
    log = output_dir / "qcluster.log"
    log.unlink(missing_ok=True)
    started = time.monotonic()
    cluster = Cluster(log, **redis_journal)
    cluster.start()
    try:
        # Three dispatches, each killed at another point of its sending; the cluster started
        # to recover one dispatch is the one killed in the next.
        for kill_after in (250, 900, 1500):
            cluster = kill_mid_batch_and_recover(
                topic, sink, cluster, kill_after, log, redis_journal, started
            )
    finally:
        cluster.stop()
    assert time.monotonic() - started < 90


def test_a_secret_key_rotation_with_a_dispatch_queued_still_delivers_everything_once(
    transactional_db: None,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    queue_for_real: None,
    redis_journal: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    output_dir: Path,
) -> None:
    add_subscribers(topic, 120)
    planned = make_dispatch(topic)
    services.plan_dispatch(planned.pk)  # its send_batch tasks wait in the queue
    waiting = make_dispatch(topic)
    async_task(services.PLAN_DISPATCH_TASK, waiting.pk)  # not even planned yet
    assert OrmQ.objects.count() >= 2

    # The operator rotates SECRET_KEY: every task signed with the old key becomes unreadable.
    monkeypatch.setattr(Conf, "SECRET_KEY", NEW_SECRET_KEY)
    settings.SECRET_KEY = NEW_SECRET_KEY
    log = output_dir / "qcluster.log"
    log.unlink(missing_ok=True)
    with running_cluster(log, SECRET_KEY=NEW_SECRET_KEY, **redis_journal):
        wait_for(lambda: OrmQ.objects.count() == 0, timeout=30)  # the old tasks are dropped
        assert sink.messages == []
        sweep_until_settled([planned, waiting], timeout=45)

    rows = Delivery.objects.filter(dispatch__in=[planned, waiting])
    assert rows.count() == 240
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)
    assert "Failed to push task to queue" in log.read_text()
