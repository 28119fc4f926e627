"""subscribers.services.record_feedback_suppression: what a provider's bounce or complaint does."""

from __future__ import annotations

import pytest

from subscribers import services
from subscribers.models import ConsentEvent, Subscriber, Suppression, email_hash
from tests.factories import SubscriberFactory, SuppressionFactory

pytestmark = pytest.mark.django_db
ORIGIN = services.Origin(via="ses")


def test_a_bounce_suppresses_marks_the_subscriber_and_logs_consent() -> None:
    bob = SubscriberFactory.create(email="Bob@Example.com")

    changed = services.record_feedback_suppression(
        "bob@example.com", Suppression.Reason.BOUNCED, ORIGIN, note="SES bounce", detail={"x": 1}
    )

    assert changed is True
    suppression = Suppression.objects.get()
    assert (suppression.email_hash, suppression.reason) == (bob.email_hash, "bounced")
    assert Subscriber.objects.get().status == Subscriber.Status.BOUNCED
    event = ConsentEvent.objects.get()
    assert (event.action, event.subscriber_id) == (ConsentEvent.Action.BOUNCE, bob.pk)
    assert event.detail == {"via": "ses", "suppression": "bounced", "x": 1}


def test_an_unknown_address_is_suppressed_by_hash_alone() -> None:
    services.record_feedback_suppression(
        "stranger@example.com", Suppression.Reason.COMPLAINED, ORIGIN
    )

    assert Suppression.objects.get().email_hash == email_hash("stranger@example.com")
    assert ConsentEvent.objects.get().subscriber is None


def test_a_complaint_outranks_a_bounce_and_a_bounce_does_not_undo_a_complaint() -> None:
    SubscriberFactory.create(email="bob@example.com", status=Subscriber.Status.BOUNCED)
    SuppressionFactory.create(email="bob@example.com", reason=Suppression.Reason.BOUNCED)

    upgraded = services.record_feedback_suppression(
        "bob@example.com", Suppression.Reason.COMPLAINED, ORIGIN
    )
    kept = services.record_feedback_suppression(
        "bob@example.com", Suppression.Reason.BOUNCED, ORIGIN
    )

    assert (upgraded, kept) == (True, False)
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINED
    assert Subscriber.objects.get().status == Subscriber.Status.COMPLAINED
    assert ConsentEvent.objects.count() == 2


def test_a_bounced_subscriber_cannot_subscribe_again_from_their_link() -> None:
    bob = SubscriberFactory.create(email="bob@example.com")
    services.unsubscribe(bob, ORIGIN)
    services.record_feedback_suppression("bob@example.com", Suppression.Reason.BOUNCED, ORIGIN)
    bob.refresh_from_db()
    bob.status = Subscriber.Status.UNSUBSCRIBED  # as if the bounce had reached only the list
    bob.save(update_fields=["status"])

    assert services.resubscribe(bob, ORIGIN) is False
    assert Suppression.objects.get().reason == Suppression.Reason.BOUNCED


def test_only_bounced_and_complained_are_feedback_reasons() -> None:
    with pytest.raises(ValueError, match="not a feedback reason"):
        services.record_feedback_suppression("bob@example.com", "unsubscribed", ORIGIN)
