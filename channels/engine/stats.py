"""What workers record per batch: each message's provider time and the throttled answers, added
to the channel's counters in the database in one upsert per batch (decision 0060); /metrics
(channels.metrics) reads them back."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from channels.backends.base import Backend, Handover, Message, Outcome, OutcomeStatus
from channels.models import SendStat

#: Upper bounds (seconds) of the send-latency histogram buckets; +Inf is implied.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INF = float("inf")


def bucket_key(bound: float) -> str:
    return "latency_le_+Inf" if bound == INF else f"latency_le_{bound:g}"


@dataclass
class TimedBackend:
    """A backend whose every ``send`` call is timed: (seconds, messages) per call.

    A backend hands a whole slice to the provider in one call, so the latency recorded for each
    message is its call's duration divided by the messages in it.
    """

    backend: Backend
    calls: list[tuple[float, int]] = field(default_factory=list)

    def send(self, messages: Sequence[Message]) -> list[Outcome]:
        started = time.perf_counter()
        try:
            return list(self.backend.send(messages))
        finally:
            self.calls.append((time.perf_counter() - started, len(messages)))

    def send_each(self, messages: Sequence[Message], handover: Handover) -> list[Outcome]:
        """The backend's ``send_each``; each message's latency is the time from the previous
        outcome (or the start) to its own, the journal's writes not included."""
        return list(self.backend.send_each(messages, _TimedHandover(self.calls, handover)))

    def close(self) -> None:
        self.backend.close()


class _TimedHandover:
    """Passes a backend's reports on to the journal and times each message between them."""

    def __init__(self, calls: list[tuple[float, int]], handover: Handover) -> None:
        self.calls = calls
        self.handover = handover
        self.started = time.perf_counter()

    def handing_over(self, delivery_id: int) -> None:
        self.handover.handing_over(delivery_id)

    def answered(self, outcome: Outcome) -> None:
        self.calls.append((time.perf_counter() - self.started, 1))
        try:
            self.handover.answered(outcome)
        finally:
            self.started = time.perf_counter()

    def answered_later(self, outcome: Outcome) -> None:
        self.calls.append((time.perf_counter() - self.started, 1))
        try:
            self.handover.answered_later(outcome)
        finally:
            self.started = time.perf_counter()

    def flush(self) -> None:
        self.handover.flush()


def batch_stats(
    calls: Sequence[tuple[float, int]], outcomes: Sequence[Outcome]
) -> dict[str, float]:
    """The counters one batch adds: histogram buckets, sum, count, throttled answers."""
    stats: dict[str, float] = {}
    for seconds, count in calls:
        if count <= 0:
            continue
        each = seconds / count
        bound = next((b for b in LATENCY_BUCKETS if each <= b), INF)
        key = bucket_key(bound)
        stats[key] = stats.get(key, 0.0) + count
        stats["latency_sum"] = stats.get("latency_sum", 0.0) + seconds
        stats["latency_count"] = stats.get("latency_count", 0.0) + count
    throttled = sum(1 for o in outcomes if o.status == OutcomeStatus.RATE_LIMITED)
    if throttled:
        stats["throttled"] = float(throttled)
    return stats


def record_batch(
    channel_id: int, calls: Sequence[tuple[float, int]], outcomes: Sequence[Outcome]
) -> None:
    """Add one batch's counters to the channel's SendStat rows in one statement."""
    stats = batch_stats(calls, outcomes)
    if not stats:
        return
    table = SendStat._meta.db_table
    values = ", ".join(["(%s, %s, %s)"] * len(stats))
    params: list[Any] = []
    for key, value in sorted(stats.items()):  # one order for all: no deadlock between workers
        params.extend([channel_id, key, value])
    # PostgreSQL and SQLite both accept this upsert.
    sql = f"""
        INSERT INTO {table} (channel_id, key, value) VALUES {values}
        ON CONFLICT (channel_id, key) DO UPDATE SET value = {table}.value + excluded.value
    """  # noqa: S608 (table name from model metadata, values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
