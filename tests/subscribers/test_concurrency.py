"""Sign-ups racing for one address, on PostgreSQL with real threads and connections."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection

from publishing.models import Topic
from subscribers import services
from subscribers.models import ConsentEvent, Subscriber
from tests.factories import TopicFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(count: int, topic: Topic, email: str) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait()
            services.sign_up(email=email, topics=[topic], origin=services.Origin(via="test"))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_simultaneous_sign_ups_create_one_subscriber_and_at_most_three_emails() -> None:
    topic = TopicFactory.create(slug="news")
    mail.outbox.clear()

    errors = race(6, topic, "Race@Example.com")

    assert errors == []
    assert Subscriber.objects.count() == 1
    assert ConsentEvent.objects.count() == 6
    assert ConsentEvent.objects.filter(detail__email_sent=True).count() == 3
    assert len(mail.outbox) == 3
