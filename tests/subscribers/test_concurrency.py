"""Sign-ups racing for one address, on PostgreSQL with real threads and connections."""

from __future__ import annotations

import pytest
from django.core import mail

from publishing.models import Topic
from subscribers import services
from subscribers.models import ConsentEvent, Subscriber
from tests.concurrency import run_at_once
from tests.factories import TopicFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(count: int, topic: Topic, email: str) -> list[BaseException]:
    """Sign ``email`` up from ``count`` threads at once; return what they raised."""

    def one() -> None:
        services.sign_up(email=email, topics=[topic], origin=services.Origin(via="test"))

    return run_at_once(*[one] * count).errors


def test_simultaneous_sign_ups_create_one_subscriber_and_at_most_three_emails() -> None:
    topic = TopicFactory.create(slug="news")
    mail.outbox.clear()

    errors = race(6, topic, "Race@Example.com")

    assert errors == []
    assert Subscriber.objects.count() == 1
    assert ConsentEvent.objects.count() == 6
    assert ConsentEvent.objects.filter(detail__email_sent=True).count() == 3
    assert len(mail.outbox) == 3
