"""Several workers at once, on PostgreSQL, with real threads and separate connections."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from django_q.conf import Conf

from channels.engine import batches, fanout
from channels.models import Channel, Delivery
from publishing.models import Topic
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch
from tests.concurrency import run_at_once

pytestmark = [pytest.mark.postgres]


@pytest.fixture(autouse=True)
def tasks_wait_in_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Enqueued tasks stay in the ORM queue: the threads below are the only workers."""
    monkeypatch.setattr(Conf, "SYNC", False)


def in_threads(count: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``count`` threads started together; each has its own connection."""
    return run_at_once(*[work] * count).all_results()


def test_two_workers_claiming_at_once_never_send_one_delivery_twice(
    transactional_db: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    Channel.objects.filter(pk=smtp_channel.pk).update(batch_size=25)
    add_subscribers(topic, 300)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)

    def drain() -> list[int]:
        claimed = []
        while report := batches.send_batch(smtp_channel.pk):
            if not report.claimed:
                break
            claimed.append(report.claimed)
        return claimed

    shares = in_threads(2, drain)

    assert sum(sum(b) for b in shares) == 300
    assert all(b for b in shares), "both workers got a share"
    rows = Delivery.objects.filter(dispatch=dispatch)
    assert set(rows.values_list("status", "attempts")) == {("sent", 1)}
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)


def test_a_rate_limit_holds_across_workers(
    transactional_db: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink, settings: Any
) -> None:
    settings.DELIVERY_RATE_BATCH_SECONDS = 0.5
    rate = 40.0
    Channel.objects.filter(pk=smtp_channel.pk).update(rate_limit_per_second=rate, batch_size=100)
    add_subscribers(topic, 80)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    arrivals: list[float] = []

    def record_arrival(content: bytes, rcpt: list[str]) -> None:
        arrivals.append(time.monotonic())

    sink.answer = record_arrival

    def drain() -> int:
        total = 0
        while (claimed := batches.send_batch(smtp_channel.pk).claimed) > 0:
            total += claimed
        return total

    started = time.monotonic()
    sent = sum(in_threads(3, drain))
    elapsed = time.monotonic() - started

    assert sent == 80
    assert Delivery.objects.filter(status="sent").count() == 80
    # 80 messages at 40/s take about 2 s, whoever sends them; never more than 40 in a second.
    assert elapsed >= (80 - 1) / rate - 0.05
    arrivals.sort()
    assert arrivals[-1] - arrivals[0] >= (len(arrivals) - 1) / rate - 0.05
    busiest = max(sum(1 for t in arrivals if start <= t < start + 1.0) for start in arrivals)
    # Slots are 1/R apart across all workers, so the average never exceeds R (above). Within
    # one second, a worker stalled by a busy machine (2 shared cores) can send its late slots
    # close together: allow that jitter, not a second worker's share (which would be 2 R).
    assert busiest <= rate * 1.1 + 1
