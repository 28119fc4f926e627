"""The claim and the batch's outcome UPDATE, as PostgreSQL runs them: the claim is one
statement (its SELECT and UPDATE in a WITH), and the outcome UPDATE sends a column as one
value when every row of the batch has the same (docs/performance.md)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.utils import timezone

from channels.backends.base import Outcome, OutcomeStatus, UncertainPolicy
from channels.engine import claims, fanout, outcomes
from channels.models import Channel, Delivery
from publishing.models import Topic
from tests.channels.conftest import add_subscribers, claimed_batch, make_dispatch

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_the_claim_marks_its_rows_sending_and_returns_them_in_claim_order(
    topic: Topic, smtp_channel: Channel
) -> None:
    add_subscribers(topic, 6)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    now = timezone.now()
    # Claim order is (priority, next_attempt_at, id): shuffle it against the ids.
    due = {ids[0]: 5, ids[1]: 1, ids[2]: 4, ids[3]: 2, ids[4]: 3, ids[5]: 0}
    for pk, minutes in due.items():
        Delivery.objects.filter(pk=pk).update(
            next_attempt_at=now - dt.timedelta(minutes=minutes), attempts=2
        )
    Delivery.objects.filter(pk=ids[0]).update(priority=0)  # urgent: first whatever its time

    rows, lease = claims.claim(smtp_channel, 4, now)

    assert [row.pk for row in rows] == [ids[0], ids[2], ids[4], ids[3]]
    assert all(
        (row.status, row.attempts, row.lease_expires_at) == ("sending", 3, lease) for row in rows
    )
    stored = {
        pk: (status, attempts, lease_expires_at)
        for pk, status, attempts, lease_expires_at in Delivery.objects.values_list(
            "pk", "status", "attempts", "lease_expires_at"
        )
    }
    assert {pk: stored[pk] for pk in (ids[0], ids[2], ids[4], ids[3])} == dict.fromkeys(
        (ids[0], ids[2], ids[4], ids[3]), ("sending", 3, lease)
    )
    assert stored[ids[1]] == stored[ids[5]] == ("queued", 2, None)
    # Times read as the ORM reads them: the same instants, aware, in UTC.
    due_at = dict(Delivery.objects.values_list("pk", "next_attempt_at"))
    created = dict(Delivery.objects.values_list("pk", "created_at"))
    assert [(row.next_attempt_at, row.created_at) for row in rows] == [
        (due_at[row.pk], created[row.pk]) for row in rows
    ]
    zones = {row.next_attempt_at.tzinfo for row in rows}
    zones |= {row.created_at.tzinfo if row.created_at else None for row in rows}
    assert zones == {dt.UTC}
    first = rows[0]
    assert first.subscriber is not None and first.subscriber.email.endswith("@example.com")
    assert first.is_reachable and first.version_id is not None
    assert first.dispatch_status == "sending"


def test_each_row_gets_its_own_outcome_when_the_batch_mixes_them(
    topic: Topic, smtp_channel: Channel
) -> None:
    rows, lease = claimed_batch(topic, smtp_channel, 5, subscribers=6)
    other = Delivery.objects.exclude(pk__in=[row.pk for row in rows]).get()
    done = timezone.now()

    counts = outcomes.record_outcomes(
        rows,
        [
            Outcome(rows[0].pk, OutcomeStatus.SENT, provider_message_id="250 A"),
            Outcome(rows[1].pk, OutcomeStatus.SENT, provider_message_id="250 B"),
            Outcome(rows[2].pk, OutcomeStatus.TRANSIENT, error="421 busy"),
            Outcome(rows[3].pk, OutcomeStatus.PERMANENT, error="550 no such user"),
            Outcome(rows[4].pk, OutcomeStatus.UNCERTAIN, error="no answer"),
        ],
        lease,
        done,
        policies={smtp_channel.pk: UncertainPolicy.SKIP},
    )

    assert counts == {"sent": 2, "queued": 1, "failed": 1, "uncertain": 1}
    stored = {
        values[0]: values[1:]
        for values in Delivery.objects.values_list(
            "pk",
            "status",
            "provider_message_id",
            "last_error",
            "sent_at",
            "uncertain_at",
            "lease_expires_at",
            "attempts",
        )
    }
    assert stored[rows[0].pk] == ("sent", "250 A", "", done, None, None, 1)
    assert stored[rows[1].pk] == ("sent", "250 B", "", done, None, None, 1)
    assert stored[rows[2].pk][:6] == ("queued", "", "421 busy", None, None, None)
    assert stored[rows[3].pk][:6] == ("failed", "", "550 no such user", None, None, None)
    assert stored[rows[4].pk][:6] == ("uncertain", "", "no answer", None, done, None)
    retry = Delivery.objects.get(pk=rows[2].pk).next_attempt_at
    assert retry >= done  # rescheduled after a backoff, the others kept their time
    assert Delivery.objects.get(pk=rows[3].pk).next_attempt_at == rows[3].next_attempt_at
    assert Delivery.objects.values_list("status", flat=True).get(pk=other.pk) == "queued"


def test_a_batch_of_sent_rows_keeps_each_ones_message_id_and_only_rows_under_the_lease(
    topic: Topic, smtp_channel: Channel
) -> None:
    rows, lease = claimed_batch(topic, smtp_channel, 4)
    # The sweeper took the last row back (its lease expired) before this batch recorded.
    Delivery.objects.filter(pk=rows[3].pk).update(status="queued", lease_expires_at=None)
    done = timezone.now()

    counts = outcomes.record_outcomes(
        rows,
        [Outcome(row.pk, OutcomeStatus.SENT, provider_message_id=f"id-{row.pk}") for row in rows],
        lease,
        done,
    )

    assert counts == {"sent": 3}
    stored = dict(Delivery.objects.values_list("pk", "provider_message_id"))
    assert [stored[row.pk] for row in rows] == [*(f"id-{row.pk}" for row in rows[:3]), ""]
    assert Delivery.objects.get(pk=rows[3].pk).status == "queued"


def _queue_in_order(topic: Topic, count: int) -> list[int]:
    """``count`` queued bulk deliveries, due a minute ago; their ids in claim order."""
    add_subscribers(topic, count)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    Delivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(minutes=1))
    return list(Delivery.objects.order_by("pk").values_list("pk", flat=True))


def test_after_a_full_batch_the_next_claim_starts_after_its_last_row(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    """Decision 0092: within DELIVERY_CLAIM_RESCAN_SECONDS, a row that sorts before the last
    full batch's end (here: site mail queued meanwhile) waits for the next claim from the
    start; after it, it is claimed first again."""
    settings.DELIVERY_CLAIM_RESCAN_SECONDS = 0.5
    ids = _queue_in_order(topic, 7)
    first, _ = claims.claim(smtp_channel, 2, timezone.now())
    urgent = ids[6]
    Delivery.objects.filter(pk=urgent).update(priority=Delivery.PRIORITY_TRANSACTIONAL)

    second, _ = claims.claim(smtp_channel, 2, timezone.now())
    time.sleep(0.6)
    third, _ = claims.claim(smtp_channel, 2, timezone.now())

    assert [row.pk for row in first] == ids[:2]
    assert [row.pk for row in second] == ids[2:4]  # after the position: the urgent row waits
    assert [row.pk for row in third] == [urgent, ids[4]]  # from the start again


def test_a_batch_that_is_not_full_sends_the_next_claim_to_the_start(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    settings.DELIVERY_CLAIM_RESCAN_SECONDS = 60
    ids = _queue_in_order(topic, 3)
    full, _ = claims.claim(smtp_channel, 2, timezone.now())
    short, _ = claims.claim(smtp_channel, 2, timezone.now())
    # The first batch's rows back in the queue with their old time (a sweeper's re-queue).
    Delivery.objects.filter(pk__in=ids[:2]).update(status="queued", lease_expires_at=None)

    again, _ = claims.claim(smtp_channel, 2, timezone.now())

    assert ([r.pk for r in full], [r.pk for r in short]) == (ids[:2], ids[2:])
    assert [row.pk for row in again] == ids[:2]


def test_without_a_rescan_interval_every_claim_starts_from_the_start(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    settings.DELIVERY_CLAIM_RESCAN_SECONDS = 0
    ids = _queue_in_order(topic, 5)
    claims.claim(smtp_channel, 2, timezone.now())
    Delivery.objects.filter(pk=ids[4]).update(priority=Delivery.PRIORITY_TRANSACTIONAL)

    rows, _ = claims.claim(smtp_channel, 2, timezone.now())

    assert [row.pk for row in rows] == [ids[4], ids[2]]


def test_each_channel_keeps_its_own_position(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    settings.DELIVERY_CLAIM_RESCAN_SECONDS = 60
    ids = _queue_in_order(topic, 4)
    other = Channel.objects.create(name="Other SMTP", kind=smtp_channel.kind, config={})
    claims.claim(smtp_channel, 2, timezone.now())
    Delivery.objects.filter(pk__in=ids[:2]).update(status="queued", channel=other)

    rows, _ = claims.claim(other, 2, timezone.now())

    assert [row.pk for row in rows] == ids[:2]
