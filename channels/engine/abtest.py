"""A/B subject tests (decision 0079): measuring each subject, deciding once, sending the rest.

The fan-out (``fanout.plan_dispatch``) gave the test share of the email audience its subjects
and set the dispatch's ``ab_decide_at``. When that time has come, the sweeper (every minute)
calls ``decide_due``: for each due dispatch, ``decide`` locks the dispatch row (two workers
decide once), reads each subject's delivered test messages and the people who opened or clicked
them (the classifier's ``DeliveryEngagement`` rows), runs the test (``channels.ab_statistics``),
records the result on the dispatch and creates the rest's deliveries with the winning subject by
the fan-out's own INSERT ... SELECT. The ledger's unique constraint (one delivery per dispatch,
channel and subscriber) means a subscriber of the test, or a second run, never gets a second
message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from channels.ab_statistics import (
    METHOD,
    REASON_SAMPLE_TOO_SMALL,
    REASON_SIGNIFICANT,
    Sample,
    wilson_interval,
)
from channels.ab_statistics import decide as decide_test
from channels.engine.fanout import _insert_deliveries, audience_by_channel, version_topic_ids
from channels.engine.queue import enqueue_due_batches
from channels.models import Channel, Delivery, SesFeedback
from publishing.abtests import subjects_of
from publishing.models import Dispatch, Publication

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VariantCounts:
    """One subject's test so far: deliveries created, delivered (sent, minus hard bounces), and
    delivered messages a person opened (an open or a click) or clicked."""

    targeted: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0

    def successes(self, metric: str) -> int:
        return self.clicked if metric == Publication.AbMetric.CLICKS else self.opened


def measure(dispatch_id: int, subjects: int) -> list[VariantCounts]:
    """Each subject's counts, in one grouped query over the dispatch's test deliveries."""
    bounced = SesFeedback.objects.filter(
        delivery_id=OuterRef("pk"), type=SesFeedback.Type.BOUNCE, subtype="Permanent"
    )
    delivered = Q(status=Delivery.Status.SENT, hard_bounce=False)
    rows = (
        Delivery.objects.filter(
            dispatch_id=dispatch_id, kind=Delivery.Kind.SUBSCRIBER, variant__isnull=False
        )
        .annotate(hard_bounce=Exists(bounced))
        .order_by()
        .values("variant")
        .annotate(
            targeted=Count("pk"),
            delivered=Count("pk", filter=delivered),
            opened=Count("pk", filter=delivered & Q(engagement__first_human_open_at__isnull=False)),
            clicked=Count(
                "pk", filter=delivered & Q(engagement__first_human_click_at__isnull=False)
            ),
        )
    )
    counts = [VariantCounts() for _ in range(subjects)]
    for row in rows:
        variant = row["variant"]
        if variant is not None and 0 <= variant < subjects:
            counts[variant] = VariantCounts(
                row["targeted"], row["delivered"], row["opened"], row["clicked"]
            )
    return counts


def decide(dispatch_id: int, now: datetime | None = None) -> bool:
    """Decide a due test once and create the rest's deliveries; False when there is nothing to
    decide (no test, not due at ``now``, or decided already, by this worker or another). The
    rest's deliveries are due at once, whatever ``now`` says."""
    now = now or timezone.now()
    with transaction.atomic():
        dispatch = (
            Dispatch.objects.select_for_update()
            .select_related("publication")
            .filter(pk=dispatch_id)
            .first()
        )
        if (
            dispatch is None
            or dispatch.ab_decide_at is None
            or dispatch.ab_decided_at is not None
            or dispatch.ab_decide_at > now
            # A paused dispatch (decision 0085) decides once a Publisher resumes it; a
            # cancelled one never does.
            or dispatch.status in (Dispatch.Status.PAUSED, Dispatch.Status.CANCELLED)
        ):
            return False
        version = Publication.history.model.objects.get(history_id=dispatch.version_id)
        subjects = subjects_of(version)
        counts = measure(dispatch.pk, len(subjects))
        metric = version.ab_metric
        samples = [Sample(c.successes(metric), c.delivered) for c in counts]
        decision = decide_test(samples, version.ab_min_sample)
        decided_at = timezone.now()
        created = _send_rest(dispatch, decision.winner, decided_at)
        dispatch.ab_decided_at = decided_at
        dispatch.ab_winner = decision.winner
        dispatch.ab_result = {
            "method": METHOD,
            "metric": metric,
            "min_sample": version.ab_min_sample,
            "significant": decision.significant,
            "reason": decision.reason,
            "p_value": decision.p_value,
            "best": decision.best,
            "rest": created,
            "variants": [
                {
                    "subject": subject,
                    "targeted": count.targeted,
                    "delivered": count.delivered,
                    "opened": count.opened,
                    "clicked": count.clicked,
                    "p_value": p_value,
                }
                for subject, count, p_value in zip(subjects, counts, decision.p_values, strict=True)
            ],
        }
        if dispatch.status == Dispatch.Status.DONE:  # settled before the decision (older code)
            dispatch.status = Dispatch.Status.SENDING
            dispatch.finished_at = None
        dispatch.save(
            update_fields=[
                "ab_decided_at",
                "ab_winner",
                "ab_result",
                "status",
                "finished_at",
            ]
        )
        transaction.on_commit(lambda: enqueue_due_batches(dispatch_id=dispatch_id))
    logger.info(
        "A/B test of dispatch %s decided: subject %s (%s, p=%s); %s deliveries for the rest",
        dispatch_id,
        decision.winner + 1,
        decision.reason,
        decision.p_value,
        created,
    )
    return True


def _send_rest(dispatch: Dispatch, winner: int, now: datetime) -> int:
    """The rest of the email audience, with the winning subject: who the fan-out would reach
    now among the subscribers confirmed when the publication was sent (someone who subscribed
    during the test is not sent an older publication), through the channel the test went
    through, so that the ledger's unique constraint skips everyone already in the test."""
    audiences = [
        audience
        for audience in audience_by_channel(version_topic_ids(dispatch), now)
        if audience.kind == Delivery.Kind.SUBSCRIBER
    ]
    if not audiences:
        return 0
    audience = audiences[0]
    test_channel_id = (
        Delivery.objects.filter(dispatch_id=dispatch.pk, kind=Delivery.Kind.SUBSCRIBER)
        .values_list("channel_id", flat=True)
        .first()
    )
    channel: Channel = audience.channel
    if test_channel_id is not None and test_channel_id != channel.pk:
        channel = Channel.objects.get(pk=test_channel_id)
    recipients: Any = audience.recipients.filter(confirmed_at__lte=dispatch.created_at)
    rest = replace(audience, channel=channel, recipients=recipients)
    languages = sorted(dispatch.translation_versions or {})
    return _insert_deliveries(dispatch.pk, rest, now, variant=winner, languages=languages)


def decide_due(now: datetime | None = None) -> int:
    """Decide every test whose time has come (the sweeper calls this). Returns how many."""
    now = now or timezone.now()
    due = Dispatch.objects.filter(ab_decided_at__isnull=True, ab_decide_at__lte=now).exclude(
        status__in=[Dispatch.Status.PAUSED, Dispatch.Status.CANCELLED]
    )
    return sum(decide(pk, now) for pk in due.values_list("pk", flat=True))


@dataclass(frozen=True)
class VariantRow:
    """One subject as the admin shows it: its rate and 95% Wilson interval, in percent."""

    number: int
    subject: str
    targeted: int
    delivered: int
    successes: int
    rate: float | None
    low: float
    high: float
    is_winner: bool
    is_best: bool


@dataclass(frozen=True)
class TestReport:
    """An A/B test for the admin: each subject, the method, and the decision or when it is due."""

    variants: list[VariantRow]
    method: str
    metric: str
    min_sample: int
    decide_at: datetime | None
    decided_at: datetime | None
    winner: int | None
    reason: str
    p_value: float | None
    rest: int | None

    @property
    def p_text(self) -> str:
        """The p-value as the admin prints it ("p = 0.0123", "p < 0.0001"); empty untested."""
        if self.p_value is None:
            return ""
        return "p < 0.0001" if self.p_value < 0.0001 else f"p = {self.p_value:.4f}"

    @property
    def verdict(self) -> str:
        """What the decision was, in a sentence an editor reads."""
        if self.decided_at is None or self.winner is None:
            return ""
        subject = self.variants[self.winner].subject if self.variants else ""
        if self.reason == REASON_SIGNIFICANT:
            return f"Subject {self.winner + 1} won (“{subject}”) and was sent to the rest."
        if self.reason == REASON_SAMPLE_TOO_SMALL:
            return (
                "No winner: a subject had fewer delivered test messages than the minimum "
                f"sample ({self.min_sample}); the first subject (“{subject}”) was sent to the "
                "rest."
            )
        return (
            "No significant difference between the subjects: the first subject "
            f"(“{subject}”) was sent to the rest."
        )


def report(dispatch: Dispatch) -> TestReport | None:
    """The dispatch's A/B test: as decided (the counts the decision saw) or, before the
    decision, as it stands; None when the dispatch tests nothing."""
    if dispatch.ab_decide_at is None:
        return None
    version = Publication.history.model.objects.filter(history_id=dispatch.version_id).first()
    subjects = subjects_of(version) if version is not None else []
    if version is None or not subjects:
        return None
    result: dict[str, Any] = dispatch.ab_result or {}
    metric = str(result.get("metric") or version.ab_metric)
    min_sample = int(result.get("min_sample") or version.ab_min_sample)
    if dispatch.ab_decided_at is not None and result.get("variants"):
        counts = [
            VariantCounts(v["targeted"], v["delivered"], v["opened"], v["clicked"])
            for v in result["variants"]
        ]
        subjects = [str(v["subject"]) for v in result["variants"]]
        p_value, reason = result.get("p_value"), str(result.get("reason", ""))
        best = int(result.get("best", 0))
    else:
        counts = measure(dispatch.pk, len(subjects))
        samples = [Sample(c.successes(metric), c.delivered) for c in counts]
        live = decide_test(samples, min_sample)
        p_value, reason, best = live.p_value, "", live.best
    rows = []
    for index, (subject, count) in enumerate(zip(subjects, counts, strict=True)):
        successes = count.successes(metric)
        low, high = wilson_interval(successes, count.delivered)
        rows.append(
            VariantRow(
                number=index + 1,
                subject=subject,
                targeted=count.targeted,
                delivered=count.delivered,
                successes=successes,
                rate=round(100 * successes / count.delivered, 1) if count.delivered else None,
                low=round(100 * low, 1),
                high=round(100 * high, 1),
                is_winner=dispatch.ab_winner == index,
                is_best=best == index,
            )
        )
    label = dict(Publication.AbMetric.choices).get(metric, metric)
    return TestReport(
        variants=rows,
        method=METHOD,
        metric=str(label),
        min_sample=min_sample,
        decide_at=dispatch.ab_decide_at,
        decided_at=dispatch.ab_decided_at,
        winner=dispatch.ab_winner,
        reason=reason,
        p_value=p_value,
        rest=result.get("rest"),
    )
