"""Crash safety with a real django-q2 cluster: SIGKILL mid-batch, SECRET_KEY rotation."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import pytest
import redis
from aiosmtpd.controller import Controller
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

from channels.configuration import save_channel
from channels.engine import fanout, journal, queue, sweeper
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
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
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
        sweeper.sweep()
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
    async_task(queue.PLAN_DISPATCH_TASK, dispatch.pk)
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
    fanout.plan_dispatch(planned.pk)  # its send_batch tasks wait in the queue
    waiting = make_dispatch(topic)
    async_task(queue.PLAN_DISPATCH_TASK, waiting.pk)  # not even planned yet
    assert OrmQ.objects.count() >= 2

    # The operator rotates SECRET_KEY: every task signed with the old key becomes unreadable.
    monkeypatch.setattr(Conf, "SECRET_KEY", NEW_SECRET_KEY)
    settings.SECRET_KEY = NEW_SECRET_KEY
    log = output_dir / "qcluster.log"
    log.unlink(missing_ok=True)
    # The wake-up of due rows would rebuild the work too: this test is about the sweeper's.
    with running_cluster(
        log, SECRET_KEY=NEW_SECRET_KEY, DELIVERY_WAKE_SECONDS="0", **redis_journal
    ):
        wait_for(lambda: OrmQ.objects.count() == 0, timeout=30)  # the old tasks are dropped
        assert sink.messages == []
        sweep_until_settled([planned, waiting], timeout=45)

    rows = Delivery.objects.filter(dispatch__in=[planned, waiting])
    assert rows.count() == 240
    assert set(rows.values_list("status", flat=True)) == {"sent"}
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)
    assert "Failed to push task to queue" in log.read_text()


# --- Kills inside the window: a reply held back by the peer (decision 0068) ---------------------

#: Messages between two kills: never a multiple of a batch, so each kill lands mid-batch.
SMTP_KILL_STEPS = (137, 174, 91, 203, 119)
WEBHOOK_KILL_STEPS = (13, 17, 23, 11, 19)
#: Workers with short leases, so that five recoveries fit in a test run.
FAST_RECOVERY = {"Q_TIMEOUT": "3", "Q_RETRY": "5", "DELIVERY_LEASE_SECONDS": "4"}


class HoldingPeer(Protocol):
    held: threading.Event
    release: threading.Event

    def hold_after(self, count: int) -> None:
        """Hold the reply to the ``count``-th message received from now on."""

    def received(self) -> Counter[int]:
        """How many times each delivery arrived."""

    def held_ids(self) -> list[int]:
        """The deliveries whose reply was held."""


class HeldSmtpSink(SmtpSink):
    def hold_after(self, count: int) -> None:
        target = len(self.messages) + count
        self.hold_when = lambda received: received == target

    def received(self) -> Counter[int]:
        return self.delivery_ids()

    def held_ids(self) -> list[int]:
        return [
            int(match.group(1))
            for match in map(MESSAGE_ID.search, self.held_messages)
            if match is not None
        ]


class HeldWebhookPeer:
    """A webhook receiver that records each request's webhook-id and holds the reply to a
    chosen one (it has the request; the sender waits) until released."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self._held: list[int] = []
        self._target: int | None = None
        self._lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery_id = int(self.headers["webhook-id"])
                with peer._lock:
                    peer.ids.append(delivery_id)
                    hold = len(peer.ids) == peer._target
                    if hold:
                        peer._held.append(delivery_id)
                if hold:
                    peer.held.set()
                    peer.release.wait(60)
                    peer.held.clear()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def hold_after(self, count: int) -> None:
        with self._lock:
            self._target = len(self.ids) + count

    def received(self) -> Counter[int]:
        with self._lock:
            return Counter(self.ids)

    def held_ids(self) -> list[int]:
        with self._lock:
            return list(self._held)

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def kill_while_a_reply_is_held(
    peer: HoldingPeer,
    steps: tuple[int, ...],
    dispatches: list[Dispatch],
    log: Path,
    env: dict[str, str],
) -> None:
    """Start a cluster; for each step, let the peer hold the reply to the step-th message
    from now, SIGKILL the cluster's process group while the reply is held, release the peer
    (the answer goes to a dead socket), start a new cluster. Then let everything settle."""
    cluster = Cluster(log, **FAST_RECOVERY, **env)
    cluster.start()
    try:
        for step in steps:
            peer.hold_after(step)
            deadline = time.monotonic() + 60
            while not peer.held.wait(0.5):
                assert time.monotonic() < deadline, "the peer never got to hold a reply"
                sweeper.sweep()  # recovers the previous kill's rows, as its schedule would
            cluster.kill()
            peer.release.set()
            wait_for(lambda: not peer.held.is_set(), timeout=10, every=0.01)
            peer.release.clear()
            cluster = Cluster(log, **FAST_RECOVERY, **env)
            cluster.start()
        sweep_until_settled(dispatches, timeout=90)
    finally:
        cluster.stop()


def check_policy(peer: HoldingPeer, rows: Any, policy: str, kills: int) -> str:
    """Assert the promise of ``policy`` per delivery; return a one-line summary."""
    ids = set(rows.values_list("pk", flat=True))
    received = peer.received()
    held = set(peer.held_ids())
    uncertain = set(rows.filter(uncertain_at__isnull=False).values_list("pk", flat=True))
    twice = {pk for pk in ids if received[pk] > 1}
    missing = {pk for pk in ids if received[pk] == 0}
    # Each kill held one reply: that delivery was handed over and never answered (a resent
    # one may be held again by a later kill).
    assert len(peer.held_ids()) == kills
    assert held <= uncertain
    if policy == "resend":
        # At least once: nothing missing, and a duplicate only where the ledger says so.
        assert set(rows.values_list("status", flat=True)) == {"sent"}
        assert not missing
        assert twice <= uncertain
    else:
        # At most once: no duplicate at all; whatever did not arrive is marked and skipped.
        assert not twice
        skipped = set(rows.filter(status="uncertain").values_list("pk", flat=True))
        assert held <= skipped
        assert missing <= skipped
        assert set(rows.values_list("status", flat=True)) <= {"sent", "uncertain"}
        assert uncertain == skipped
    return (
        f"{policy}: {kills} kills, {len(ids)} deliveries, {len(uncertain)} uncertain, "
        f"{len(twice)} received twice, {len(missing)} missing"
    )


@pytest.mark.parametrize("policy", ["resend", "skip"])
def test_smtp_kills_while_the_sink_holds_its_reply_duplicate_or_skip_only_uncertain_messages(
    transactional_db: None,
    topic: Topic,
    queue_for_real: None,
    redis_journal: dict[str, str],
    output_dir: Path,
    policy: str,
) -> None:
    sink = HeldSmtpSink(pipelining=True)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    log = output_dir / f"qcluster-smtp-{policy}.log"
    log.unlink(missing_ok=True)
    try:
        make_smtp_channel(port, batch_size=BATCH_SIZE, uncertain_policy=policy)
        add_subscribers(topic, 1000)
        dispatch = make_dispatch(topic)
        async_task(queue.PLAN_DISPATCH_TASK, dispatch.pk)
        kill_while_a_reply_is_held(sink, SMTP_KILL_STEPS, [dispatch], log, redis_journal)
    finally:
        sink.release.set()
        controller.stop()

    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.count() == 1000
    print("\nSMTP " + check_policy(sink, rows, policy, len(SMTP_KILL_STEPS)))  # noqa: T201


@pytest.mark.parametrize("policy", ["resend", "skip"])
def test_webhook_kills_while_the_receiver_holds_its_reply_duplicate_or_skip_only_uncertain_ones(
    transactional_db: None,
    topic: Topic,
    queue_for_real: None,
    redis_journal: dict[str, str],
    output_dir: Path,
    policy: str,
) -> None:
    peer = HeldWebhookPeer()
    log = output_dir / f"qcluster-webhook-{policy}.log"
    log.unlink(missing_ok=True)
    try:
        channel = Channel(name="Receiver", kind="webhook", batch_size=10, uncertain_policy=policy)
        save_channel(channel, {"url": peer.url, "secret": WHSEC, "timeout": 30})
        dispatches = [make_dispatch(topic) for _ in range(120)]
        for dispatch in dispatches:
            fanout.plan_dispatch(dispatch.pk)
        kill_while_a_reply_is_held(peer, WEBHOOK_KILL_STEPS, dispatches, log, redis_journal)
    finally:
        peer.stop()

    rows = Delivery.objects.filter(channel__name="Receiver")
    assert rows.count() == 120
    print("\nwebhook " + check_policy(peer, rows, policy, len(WEBHOOK_KILL_STEPS)))  # noqa: T201


class RateLimitingReceiver:
    """A webhook receiver that answers its first request 429 with ``Retry-After: 2``, then 200,
    and notes when each request arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.arrivals.append(time.monotonic())
                first = len(receiver.arrivals) == 1
                self.send_response(429 if first else 200)
                if first:
                    self.send_header("Retry-After", "2")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_real_worker_retries_a_retry_after_of_two_seconds_about_two_seconds_later(
    transactional_db: None, topic: Topic, queue_for_real: None, output_dir: Path
) -> None:
    receiver = RateLimitingReceiver()
    log = output_dir / "qcluster-retry.log"
    log.unlink(missing_ok=True)
    channel = Channel(name="Busy receiver", kind="webhook")
    save_channel(channel, {"url": receiver.url, "secret": WHSEC})
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    # Nothing but the wake-up of due retries may pick the retry up: the sweeper's schedule
    # only looks at work older than a minute here, and this test process does not sweep.
    try:
        with running_cluster(log, DELIVERY_SWEEP_STALE_SECONDS="60"):
            wait_for(lambda: len(receiver.arrivals) >= 2, timeout=30, every=0.05)
            wait_for(
                lambda: Delivery.objects.filter(dispatch=dispatch, status="sent").exists(),
                timeout=10,
            )
    finally:
        receiver.stop()

    gap = receiver.arrivals[1] - receiver.arrivals[0]
    print(f"\nretry after 429 Retry-After: 2 came {gap:.2f} s later")  # noqa: T201
    assert 2.0 <= gap < 4.5
