"""One definition of who may receive mail (``Subscriber.objects.reachable()``), and the three
paths that use it agree on every case: the fan-out, the claim of a batch, the digests."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from channels import digests
from channels.engine import claims, fanout, messages
from channels.models import Channel, Delivery
from publishing.models import Topic
from subscribers.models import Subscriber, Subscription, Suppression, email_hash
from tests.channels.conftest import make_dispatch

pytestmark = pytest.mark.django_db

STATUSES = [choice.value for choice in Subscriber.Status]
#: (status, confirmed, suppressed) for every combination: 5 x 2 x 2 subscribers.
CASES = list(itertools.product(STATUSES, [True, False], [True, False]))


def people(topic: Topic, frequency: str) -> dict[int, tuple[str, bool, bool]]:
    """One subscriber of ``topic`` per case; returns their ids and cases."""
    now = timezone.now()
    made: dict[int, tuple[str, bool, bool]] = {}
    for index, (status, confirmed, suppressed) in enumerate(CASES):
        address = f"case{index}@example.com"
        person = Subscriber.objects.create(
            email=address,
            email_hash=email_hash(address),
            status=status,
            confirmed_at=now if confirmed else None,
        )
        Subscription.objects.create(subscriber=person, topic=topic, frequency=frequency)
        if suppressed:
            Suppression.objects.create(
                email_hash=email_hash(address), reason=Suppression.Reason.BOUNCED
            )
        made[person.pk] = (status, confirmed, suppressed)
    return made


def expected(made: dict[int, tuple[str, bool, bool]]) -> set[int]:
    """The rule, written out: active, confirmed, not suppressed."""
    return {
        pk
        for pk, (status, confirmed, suppressed) in made.items()
        if status == Subscriber.Status.ACTIVE and confirmed and not suppressed
    }


def test_the_model_the_fan_out_and_the_claim_agree_on_who_is_reachable(
    topic: Topic, smtp_channel: Channel
) -> None:
    made = people(topic, Subscription.Frequency.IMMEDIATE)
    reachable = set(Subscriber.objects.reachable().values_list("pk", flat=True))
    assert reachable == expected(made)
    assert len(reachable) == 1  # the table holds one reachable case and 19 others

    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    fanned_out = set(Delivery.objects.values_list("subscriber_id", flat=True))
    assert fanned_out == reachable

    # Every case gets a delivery anyway, as if each became unreachable after the fan-out.
    Delivery.objects.all().delete()
    Delivery.objects.bulk_create(
        Delivery(
            dispatch=dispatch,
            channel=smtp_channel,
            subscriber_id=pk,
            next_attempt_at=timezone.now(),
        )
        for pk in made
    )
    rows, _ = claims.claim(smtp_channel, 100, timezone.now())
    assert {row.subscriber.pk for row in rows if row.is_reachable and row.subscriber} == reachable
    sendable, cancelled, failures = messages.build_messages(smtp_channel, rows, timezone.now())
    assert {m.to for m in sendable} == {Subscriber.objects.get(pk=pk).email for pk in reachable}
    assert len(cancelled) == len(made) - len(reachable)
    assert failures == []


def test_digests_go_to_the_reachable_subscribers_only(topic: Topic, smtp_channel: Channel) -> None:
    made = people(topic, Subscription.Frequency.DAILY)
    end = digests.period_end(Subscription.Frequency.DAILY, timezone.now())

    due = digests.due_subscriber_ids(Subscription.Frequency.DAILY, end, [topic.pk])

    assert set(due) == expected(made)
