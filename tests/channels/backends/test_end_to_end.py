"""Publish, then let the engine deliver to broadcast channels through their real clients, against
a local peer that answers 429 with Retry-After, then 500, then too late, then 2xx: a channel that
resends what got no answer ends with its message delivered; one that skips it (Slack's and
Discord's default) stops at the unanswered request."""

from __future__ import annotations

import base64
import json
import secrets
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Response

from channels.backends.base import UncertainPolicy
from channels.configuration import save_channel
from channels.engine import batches, fanout
from channels.models import Channel, Delivery
from publishing import services as publishing
from publishing.models import Topic
from tests.channels.backends.conftest import delayed, wait_for_log
from tests.factories import PublicationFactory, TopicFactory, UserFactory

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def configure(kind: str, url: str) -> dict[str, Any]:
    if kind == "webhook":
        return {"url": url, "secret": WEBHOOK_SECRET, "timeout": 0.5}
    if kind == "slack":
        return {"mode": "webhook", "webhook_url": url, "timeout": 0.5}
    return {"webhook_url": url, "timeout": 0.5}


def script_peer(server: HTTPServer, path: str, success: Response) -> None:
    server.expect_ordered_request(path, method="POST").respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "2"})
    )
    server.expect_ordered_request(path, method="POST").respond_with_data("oops", status=500)
    server.expect_ordered_request(path, method="POST").respond_with_handler(
        delayed(1.5, Response("late", status=200))
    )
    server.expect_ordered_request(path, method="POST").respond_with_response(success)


def publish_to(topic: Topic) -> Delivery:
    publisher = UserFactory.create(is_superuser=True)
    publication = PublicationFactory.create(topics=[topic], title="Hello, channels")
    publishing.publish(publication, by=publisher)
    fanout.plan_dispatch(publication.dispatches.get().pk)
    return Delivery.objects.get(kind=Delivery.Kind.BROADCAST)


@pytest.mark.parametrize(
    ("kind", "success"),
    [
        ("webhook", Response("", status=204)),
        ("slack", Response("ok", status=200)),
        ("discord", Response('{"id": "1234"}', status=200, content_type="application/json")),
        # Without ?wait=true Discord answers 204 and no body: posted all the same.
        ("discord", Response("", status=204)),
    ],
)
def test_a_broadcast_survives_429_then_500_then_a_timeout_and_is_delivered_once(
    httpserver: HTTPServer, kind: str, success: Response
) -> None:
    topic = TopicFactory.create()
    path = f"/{kind}/hook"
    script_peer(httpserver, path, success)
    # Slack and Discord skip an unanswered post by default: this channel chose to resend it.
    channel = Channel(name=f"{kind} channel", kind=kind, uncertain_policy=UncertainPolicy.RESEND)
    save_channel(channel, configure(kind, httpserver.url_for(path)))
    delivery = publish_to(topic)

    waits = []
    for _ in range(4):
        delivery.refresh_from_db()
        if delivery.status != Delivery.Status.QUEUED:
            break
        waits.append(delivery.next_attempt_at)
        with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1), tick=True):
            batches.send_batch(channel.pk)
    wait_for_log(httpserver, 4)

    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT, delivery.last_error
    assert len(httpserver.log) == 4
    # The late answer may be logged after the success that followed it.
    statuses = sorted(response.status_code for _, response in httpserver.log)
    assert statuses == sorted([429, 500, 200, success.status_code])
    # The 429's Retry-After (2 s) was honoured before the next attempt.
    assert waits[1] - waits[0] >= timedelta(seconds=2)
    # The 429 did not spend an attempt; the 500 and the timeout did, the success did too.
    assert delivery.attempts == 3
    channel.refresh_from_db()
    assert channel.circuit_state == Channel.CircuitState.CLOSED
    assert channel.consecutive_failures == 0

    # The request that got the success (the late 200 of the timed-out one has the same body).
    request = next(r for r, answer in httpserver.log if answer.status_code == success.status_code)
    payload = json.loads(request.get_data())
    if kind == "webhook":
        headers = {name.lower(): value for name, value in request.headers.items()}
        assert headers["webhook-id"] == str(delivery.pk)
        Webhook(WEBHOOK_SECRET).verify(request.get_data(), headers)
        assert payload["type"] == "publication.published"
        assert payload["data"]["title"] == "Hello, channels"
    elif kind == "slack":
        assert "Hello, channels" in json.dumps(payload["blocks"])
    else:
        assert payload["embeds"][0]["title"] == "Hello, channels"


@pytest.mark.parametrize("kind", ["slack", "discord"])
def test_a_broadcast_left_without_answer_is_not_posted_again_by_default(
    httpserver: HTTPServer, kind: str
) -> None:
    topic = TopicFactory.create()
    path = f"/{kind}/hook"
    script_peer(httpserver, path, Response("ok", status=200))
    channel = Channel(name=f"{kind} channel", kind=kind)
    save_channel(channel, configure(kind, httpserver.url_for(path)))
    delivery = publish_to(topic)

    for _ in range(4):
        delivery.refresh_from_db()
        if delivery.status != Delivery.Status.QUEUED:
            break
        with time_machine.travel(delivery.next_attempt_at + timedelta(seconds=1), tick=True):
            batches.send_batch(channel.pk)
    wait_for_log(httpserver, 3)

    # The peer got the post the third time and answered too late: it may show it already.
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.UNCERTAIN
    assert delivery.uncertain_at is not None
    assert "(uncertain)" in delivery.last_error
    assert sorted(answer.status_code for _, answer in httpserver.log) == [200, 429, 500]


def test_a_publication_reaches_every_subscriber_once_through_ses(ses_endpoint: str) -> None:
    from email import message_from_string
    from email.policy import default as default_policy

    from tests.channels.backends.conftest import SENDER, SES_REGION, ses_sent_messages
    from tests.channels.conftest import add_subscribers

    topic = TopicFactory.create()
    readers = add_subscribers(topic, 25)
    channel = Channel(name="SES", kind="email_ses", is_default_email=True, batch_size=10)
    save_channel(
        channel,
        {
            "from_email": SENDER,
            "region": SES_REGION,
            "endpoint_url": ses_endpoint,
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "moto-secret-key-not-real",
        },
    )
    publisher = UserFactory.create(is_superuser=True)
    publication = PublicationFactory.create(topics=[topic], title="Through SES")
    publishing.publish(publication, by=publisher)
    fanout.plan_dispatch(publication.dispatches.get().pk)
    while batches.send_batch(channel.pk).claimed:
        pass

    sent = [message_from_string(m.raw_data, policy=default_policy) for m in ses_sent_messages()]
    assert sorted(str(m["To"]) for m in sent) == sorted(r.email for r in readers)
    assert {str(m["Subject"]) for m in sent} == {"Through SES"}
    assert all(m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for m in sent)
    rows = Delivery.objects.filter(kind=Delivery.Kind.SUBSCRIBER)
    assert rows.count() == 25
    assert set(rows.values_list("status", flat=True)) == {Delivery.Status.SENT}
    assert all(rows.values_list("provider_message_id", flat=True))
