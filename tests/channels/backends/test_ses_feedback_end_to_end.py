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
from urllib.parse import urlsplit

import boto3
import pytest
from django.core.mail import EmailMessage
from django.test import Client

from channels.configuration import save_channel
from channels.engine import batches, fanout
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
    fanout.plan_dispatch(dispatch.pk)
    return dispatch


def send_all(channel: Channel) -> None:
    while batches.send_batch(channel.pk).claimed:
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


def test_a_notification_signed_by_motos_sns_verifies(
    client: Client, sns: SnsPeer, moto_server: str, settings: Any
) -> None:
    """Cross-check of the canonical string against another implementation: moto's SNS signs
    what it posts to an HTTP subscriber (SignatureVersion 2) and serves its certificate. The
    certificate URL is not signed, so the test serves the same PEM from the trusted HTTPS
    peer and points the message there; everything signed is exactly what moto sent."""
    client_sns = boto3.client(
        "sns",
        region_name=SES_REGION,
        endpoint_url=moto_server,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="moto-secret-key-not-real",
    )
    topic_arn = client_sns.create_topic(Name="ses-feedback-moto")["TopicArn"]
    settings.SES_FEEDBACK_TOPIC_ARNS = [topic_arn]
    sns.server.expect_request("/subscriber", method="POST").respond_with_data("ok")
    client_sns.subscribe(
        TopicArn=topic_arn, Protocol="http", Endpoint=sns.server.url_for("/subscriber")
    )
    client_sns.publish(
        TopicArn=topic_arn, Message=json.dumps(bounce("notification", ["bob@example.com"]))
    )

    posted = [request for request, _ in sns.server.log if request.path == "/subscriber"]
    assert len(posted) == 1
    message = json.loads(posted[0].get_data())
    assert message["SignatureVersion"] == "2"
    pem_path = urlsplit(message["SigningCertURL"]).path
    # moto's server runs in this process: its SNS backend holds the PEM it serves.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    keys = sns_backends[DEFAULT_ACCOUNT_ID][SES_REGION]._message_public_keys
    pem = keys[pem_path.rsplit("/", 1)[1]]
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    sns.server.expect_request(pem_path).respond_with_data(pem)
    message["SigningCertURL"] = f"{sns.base_url}{pem_path}"

    answer = post(client, message)
    tampered = post(client, {**message, "MessageId": "another-id"})

    assert answer.status_code == 200, answer.content
    assert answer.json()["result"] == "processed"
    assert Suppression.objects.get().reason == Suppression.Reason.BOUNCED
    assert tampered.status_code == 403
    assert tampered.json()["error"] == "bad_signature"
