"""The invariant: an address SES reported as bounced or complained is never sent to again.

Real parts end to end: publications go out through the SES backend to moto's SES server, the
bounce and the complaint come back as SNS notifications signed with a key whose certificate a
local HTTPS server holds, then more mail is sent and moto receives none for those addresses.
"""

from __future__ import annotations

import json
from email import message_from_string
from email.policy import default as default_policy
from typing import Any

import pytest
from django.core.mail import EmailMessage
from django.test import Client

from channels import services
from channels.configuration import save_channel
from channels.models import Channel, Delivery, SesFeedback
from publishing import services as publishing
from publishing.models import Dispatch, Topic
from subscribers.models import Subscriber, Suppression
from tests.channels.backends.conftest import SENDER, SES_REGION, ses_sent_messages
from tests.channels.conftest import add_subscribers
from tests.channels.sns_peer import SnsPeer, bounce, complaint
from tests.factories import PublicationFactory, TopicFactory, UserFactory

pytestmark = pytest.mark.django_db


def ses_channel(endpoint: str) -> Channel:
    channel = Channel(name="SES", kind="email_ses", is_default_email=True, batch_size=10)
    save_channel(
        channel,
        {
            "from_email": SENDER,
            "region": SES_REGION,
            "endpoint_url": endpoint,
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "moto-secret-key-not-real",
        },
    )
    return channel


def plan(topic: Topic, title: str) -> Dispatch:
    publication = PublicationFactory.create(topics=[topic], title=title)
    publishing.publish(publication, by=UserFactory.create(is_superuser=True))
    dispatch = publication.dispatches.get()
    services.plan_dispatch(dispatch.pk)
    return dispatch


def send_all(channel: Channel) -> None:
    while services.send_batch(channel.pk).claimed:
        pass


def received(subject: str) -> list[str]:
    """The To addresses of what moto's SES received with this subject."""
    messages = [message_from_string(m.raw_data, policy=default_policy) for m in ses_sent_messages()]
    return sorted(str(m["To"]) for m in messages if str(m["Subject"]) == subject)


def post(client: Client, message: dict[str, str]) -> Any:
    return client.post("/hooks/ses/", data=json.dumps(message), content_type="text/plain")


def test_a_bounced_or_complained_address_is_never_sent_to_again(
    client: Client, sns: SnsPeer, ses_endpoint: str, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "channels.mail.LedgerEmailBackend"
    channel = ses_channel(ses_endpoint)
    topic = TopicFactory.create()
    alice, bob, carol = add_subscribers(topic, 3, prefix="reader")
    everyone = sorted(s.email for s in (alice, bob, carol))

    plan(topic, "First issue")
    send_all(channel)
    assert received("First issue") == everyone
    first = {d.subscriber_id: d for d in Delivery.objects.filter(status=Delivery.Status.SENT)}
    # Planned before the feedback arrives, sent after it.
    second = plan(topic, "Second issue")
    assert second.deliveries.count() == 3

    bounced = post(
        client,
        sns.notification(
            bounce("notification", [bob.email], messageId=first[bob.pk].provider_message_id)
        ),
    )
    complained = post(
        client,
        sns.notification(
            complaint("event", [carol.email], messageId=first[carol.pk].provider_message_id),
            version="2",
        ),
    )
    assert bounced.json()["suppressed"] == complained.json()["suppressed"] == 1
    assert {f.delivery_id for f in SesFeedback.objects.all()} == {
        first[bob.pk].pk,
        first[carol.pk].pk,
    }
    assert dict(Suppression.objects.values_list("reason", "email_hash")) == {
        Suppression.Reason.BOUNCED: bob.email_hash,
        Suppression.Reason.COMPLAINED: carol.email_hash,
    }

    send_all(channel)
    plan(topic, "Third issue")
    send_all(channel)
    for person in (bob, carol, alice):
        EmailMessage("Site mail", "Hello", SENDER, [person.email]).send()
    send_all(channel)

    assert received("Second issue") == [alice.email]
    assert received("Third issue") == [alice.email]
    assert received("Site mail") == [alice.email]
    statuses = dict(second.deliveries.values_list("subscriber_id", "status"))
    assert statuses == {
        alice.pk: Delivery.Status.SENT,
        bob.pk: Delivery.Status.CANCELLED,
        carol.pk: Delivery.Status.CANCELLED,
    }
    third = Delivery.objects.filter(dispatch__publication__title="Third issue")
    assert list(third.values_list("subscriber_id", flat=True)) == [alice.pk]
    people = dict(Subscriber.objects.values_list("email", "status"))
    assert people[bob.email] == Subscriber.Status.BOUNCED
    assert people[carol.email] == Subscriber.Status.COMPLAINED
