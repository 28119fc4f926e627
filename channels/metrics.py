"""The Prometheus collector /metrics serves: the ledger's live counts and the counters workers
add after each batch (channels.engine.stats). Workers run in other processes, often on other
hosts, so what they measure goes through the database (decision 0060).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Count, Max, Min, Q
from django.utils import timezone
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from channels.engine.stats import INF, LATENCY_BUCKETS, bucket_key
from channels.models import Channel, Delivery, SendStat, SesFeedback


class DeliveryCollector(Collector):
    """Reads the ledger and the workers' counters at scrape time."""

    def collect(self) -> Iterator[Any]:
        names = dict(Channel.objects.values_list("pk", "name"))
        yield from self._ledger(names)
        yield from self._uncertain(names)
        yield from self._queue(names, timezone.now())
        yield from self._channels()
        yield from self._worker_counters(names)
        yield self._ses_feedback()

    @staticmethod
    def _ledger(names: dict[int, str]) -> Iterator[Any]:
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

    @staticmethod
    def _uncertain(names: dict[int, str]) -> Iterator[Any]:
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

    @staticmethod
    def _queue(names: dict[int, str], now: datetime) -> Iterator[Any]:
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
        due: dict[int, tuple[int, datetime | None]] = dict.fromkeys(names, (0, None))
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

    @staticmethod
    def _channels() -> Iterator[Any]:
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

    @staticmethod
    def _worker_counters(names: dict[int, str]) -> Iterator[Any]:
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
                cumulative += values.get(bucket_key(bound), 0.0)
                buckets.append(("+Inf" if bound == INF else f"{bound:g}", cumulative))
            latency.add_metric(label, buckets, values.get("latency_sum", 0.0))
            throttled.add_metric(label, values.get("throttled", 0.0))
        yield latency
        yield throttled

    @staticmethod
    def _ses_feedback() -> Any:
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
        return feedback
