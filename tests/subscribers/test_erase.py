from __future__ import annotations

import io

import pytest
from django.test import Client

from publishing.models import Topic
from subscribers import services, tokens
from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression, email_hash
from tests.factories import (
    ChannelFactory,
    DeliveryFactory,
    DispatchFactory,
    SubscriberFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(news: Topic) -> Subscriber:
    subscriber = SubscriberFactory.create(email="Bob@Example.com", name="Bob")
    SubscriptionFactory.create(subscriber=subscriber, topic=news)
    services.update_preferences(
        subscriber,
        topics=[news],
        frequency="weekly",
        paused_until=None,
        email_format="text",
        origin=services.Origin(via="test", ip_address="192.0.2.0", user_agent="UA"),
    )
    return subscriber


def test_it_shows_a_confirmation_page_before_erasing(client: Client, bob: Subscriber) -> None:
    token = tokens.manage_token(bob.pk, bob.token_key)

    response = client.get(f"/preferences/{token}/erase/")

    assert response.status_code == 200
    assert b"Erase everything" in response.content
    assert Subscriber.objects.filter(pk=bob.pk).exists()


def test_it_erases_everything_but_the_hash(client: Client, bob: Subscriber) -> None:
    token = tokens.manage_token(bob.pk, bob.token_key)
    bob_id = bob.pk

    response = client.post(f"/preferences/{token}/erase/")

    assert response.status_code == 200
    assert b"Your data is erased" in response.content
    assert not Subscriber.objects.exists()
    assert not Subscription.objects.exists()
    assert not Subscriber.history.filter(id=bob_id).exists()
    assert not Subscription.history.filter(subscriber_id=bob_id).exists()
    suppression = Suppression.objects.get()
    assert suppression.email_hash == email_hash("bob@example.com")
    assert suppression.reason == Suppression.Reason.ERASED
    event = ConsentEvent.objects.get()
    assert event.action == ConsentEvent.Action.ERASE
    assert event.ip_address is None and event.user_agent == ""
    # Nothing left anywhere holds the address in clear.
    assert client.get(f"/preferences/{token}/").status_code == 400


def test_it_never_lets_an_import_add_an_erased_address_again(bob: Subscriber) -> None:
    services.erase_subscriber(bob, services.Origin(via="test"))

    report = services.import_subscribers(
        io.BytesIO(b"email,name\nBOB@example.com,Bob again\nnew@example.com,New\n")
    )

    assert report.created == 1
    assert report.skipped == 1
    assert report.problems == [
        (2, "line 2: the address is on the suppression list (erased); not re-added")
    ]
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["new@example.com"]


def test_it_erases_two_people_who_received_the_same_dispatch() -> None:
    dispatch, channel = DispatchFactory.create(), ChannelFactory.create()
    ann, ben = SubscriberFactory.create(), SubscriberFactory.create()
    DeliveryFactory.create(dispatch=dispatch, channel=channel, subscriber=ann)
    DeliveryFactory.create(dispatch=dispatch, channel=channel, subscriber=ben)

    services.erase_subscriber(ann, services.Origin(via="test"))
    services.erase_subscriber(ben, services.Origin(via="test"))

    assert not Subscriber.objects.exists()
    # The ledger keeps what was sent, with no link to the people erased.
    assert list(dispatch.deliveries.values_list("subscriber", flat=True)) == [None, None]


def test_erasure_scrubs_the_site_mail_kept_for_the_address() -> None:
    from django.core import mail as django_mail

    from channels.mail import LedgerEmailBackend
    from channels.models import Delivery

    ChannelFactory.create(kind="email_file", config={"directory": "var/unused-outbox"})
    ann = SubscriberFactory.create(email="ann@example.com")
    other = SubscriberFactory.create(email="other@example.com")
    backend = LedgerEmailBackend()
    backend.send_messages(
        [
            django_mail.EmailMessage("Hi", "body", to=["Ann@Example.com"]),
            django_mail.EmailMessage("Hi", "body", to=["other@example.com"]),
        ]
    )
    assert Delivery.objects.filter(kind="transactional").count() == 2

    services.erase_subscriber(ann, services.Origin(via="test"))

    scrubbed = Delivery.objects.get(kind="transactional", recipient="")
    assert scrubbed.raw_message is None
    assert scrubbed.status == Delivery.Status.CANCELLED
    kept = Delivery.objects.get(kind="transactional", recipient="other@example.com")
    assert kept.status == Delivery.Status.QUEUED
    assert Subscriber.objects.get() == other
