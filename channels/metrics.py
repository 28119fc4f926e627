"""Delivery metrics: what workers record per batch, and the Prometheus collector /metrics serves.

Workers run in other processes (often on other hosts) than the web server, so what they measure
goes to the database, one upsert per batch (``SendStat``), and /metrics reads it back together
with the ledger's live counts (decision 0060).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from channels.backends.base import Backend, Handover, Message, Outcome, OutcomeStatus
from channels.models import Channel, Delivery, SendStat, SesFeedback

#: Upper bounds (seconds) of the send-latency histogram buckets; +Inf is implied.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INF = float("inf")


def _bucket_key(bound: float) -> str:
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
        key = _bucket_key(bound)
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


class DeliveryCollector(Collector):
    """Reads the ledger and the workers' counters at scrape time."""

    def collect(self) -> Iterator[Any]:
        now = timezone.now()
        names = dict(Channel.objects.values_list("pk", "name"))

        deliveries = GaugeMetricFamily(
            "publishing_deliveries",
            "Deliveries in the ledger, by channel and status.",
            labels=["channel", "status"],
        )
        counts = (
            Delivery.objects.values("channel_id", "status")
            .annotate(n=Count("id"))
            .order_by("channel_id", "status")
        )
        for row in counts:
            channel = names.get(row["channel_id"], str(row["channel_id"]))
            deliveries.add_metric([channel, row["status"]], row["n"])
        yield deliveries

        uncertain = GaugeMetricFamily(
            "publishing_deliveries_uncertain",
            "Deliveries handed over at least once without an answer (the worker died or the "
            "provider did not reply), by channel and what the channel's policy did: resent "
            "(may have arrived twice) or skipped (may not have arrived).",
            labels=["channel", "resolution"],
        )
        last_uncertain = GaugeMetricFamily(
            "publishing_delivery_last_uncertain_timestamp_seconds",
            "When the channel last handed a message over without an answer (Unix time).",
            labels=["channel"],
        )
        for marked in (
            Delivery.objects.filter(uncertain_at__isnull=False)
            .values("channel_id")
            .annotate(
                total=Count("id"),
                skipped=Count("id", filter=Q(status=Delivery.Status.UNCERTAIN)),
                last=Max("uncertain_at"),
            )
            .order_by("channel_id")
        ):
            channel = names.get(marked["channel_id"], str(marked["channel_id"]))
            uncertain.add_metric([channel, "resent"], marked["total"] - marked["skipped"])
            uncertain.add_metric([channel, "skipped"], marked["skipped"])
            last_uncertain.add_metric([channel], marked["last"].timestamp())
        yield uncertain
        yield last_uncertain

        depth = GaugeMetricFamily(
            "publishing_delivery_queue_depth",
            "Queued deliveries whose time has come (due now), by channel.",
            labels=["channel"],
        )
        age = GaugeMetricFamily(
            "publishing_delivery_oldest_queued_age_seconds",
            "How long the oldest due delivery of the channel has been waiting.",
            labels=["channel"],
        )
        due = dict.fromkeys(names, (0, None))
        for waiting in (
            Delivery.objects.due(now)
            .values("channel_id")
            .annotate(n=Count("id"), oldest=Min("next_attempt_at"))
            .order_by("channel_id")
        ):
            due[waiting["channel_id"]] = (waiting["n"], waiting["oldest"])
        for channel_id, (count, oldest) in due.items():
            label = [names.get(channel_id, str(channel_id))]
            depth.add_metric(label, count)
            age.add_metric(label, (now - oldest).total_seconds() if oldest else 0.0)
        yield depth
        yield age

        circuit = GaugeMetricFamily(
            "publishing_channel_circuit_state",
            "1 for the channel's current circuit state (closed, open, half_open), else 0.",
            labels=["channel", "state"],
        )
        enabled = GaugeMetricFamily(
            "publishing_channel_enabled", "1 when the channel is enabled.", labels=["channel"]
        )
        for name, state, is_enabled in Channel.objects.values_list(
            "name", "circuit_state", "is_enabled"
        ):
            for choice in Channel.CircuitState.values:
                circuit.add_metric([name, choice], 1.0 if state == choice else 0.0)
            enabled.add_metric([name], 1.0 if is_enabled else 0.0)
        yield circuit
        yield enabled

        stats: dict[int, dict[str, float]] = {}
        for channel_id, key, value in SendStat.objects.values_list("channel_id", "key", "value"):
            stats.setdefault(channel_id, {})[key] = value
        latency = HistogramMetricFamily(
            "publishing_delivery_send_seconds",
            "Seconds the provider took per message (each backend call's time over its messages).",
            labels=["channel"],
        )
        throttled = CounterMetricFamily(
            "publishing_delivery_throttled",
            "Answers in which the provider asked us to slow down (rate-limited outcomes).",
            labels=["channel"],
        )
        for channel_id, values in sorted(stats.items()):
            label = [names.get(channel_id, str(channel_id))]
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound in (*LATENCY_BUCKETS, INF):
                cumulative += values.get(_bucket_key(bound), 0.0)
                buckets.append(("+Inf" if bound == INF else f"{bound:g}", cumulative))
            latency.add_metric(label, buckets, values.get("latency_sum", 0.0))
            throttled.add_metric(label, values.get("throttled", 0.0))
        yield latency
        yield throttled

        feedback = CounterMetricFamily(
            "publishing_ses_feedback",
            "SES bounces and complaints received through SNS, by type and subtype (bounce: "
            "Permanent, Transient, Undetermined; complaint: the feedback type).",
            labels=["type", "subtype"],
        )
        for kind, subtype, count in (
            SesFeedback.objects.values("type", "subtype")
            .annotate(n=Count("id"))
            .order_by("type", "subtype")
            .values_list("type", "subtype", "n")
        ):
            feedback.add_metric([kind, subtype], count)
        yield feedback
