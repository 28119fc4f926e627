"""/metrics: access rules, and the exposition parsed as Prometheus would."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any, cast

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from pytest_httpserver import HTTPServer

from channels.checks import check_metrics_access
from channels.configuration import save_channel
from channels.engine import batches, fanout
from channels.models import Channel, Delivery, SendStat
from publishing.models import Topic
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch
from tests.channels.sns_peer import SnsPeer, bounce, complaint
from tests.factories import ChannelFactory, DeliveryFactory

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-0123456789abcdef0123456789"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture
def metrics_on(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]


def scrape(client: Client) -> dict[str, Any]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def samples(family: Any, name: str | None = None) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for s in family.samples
        if name is None or s.name == name
    }


def test_metrics_are_not_served_until_a_token_or_an_address_is_configured(client: Client) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token_and_an_unlisted_address(
    client: Client, metrics_on: None
) -> None:
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/metrics", headers={"Authorization": TOKEN}).status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 403
    assert client.post("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 405


def test_metrics_are_served_to_an_allowed_network_without_a_token(
    client: Client, metrics_on: None
) -> None:
    response = client.get("/metrics", REMOTE_ADDR="10.1.200.7")

    assert response.status_code == 200
    assert b"publishing_delivery_queue_depth" in response.content


def test_deliveries_queue_depth_and_oldest_age_are_counted_by_channel_and_status(
    client: Client, metrics_on: None
) -> None:
    mail = cast(Channel, ChannelFactory(name="mail"))
    hooks = cast(Channel, ChannelFactory(name="hooks", kind="webhook"))
    now = timezone.now()
    DeliveryFactory.create_batch(3, channel=mail, status="sent")
    DeliveryFactory(channel=mail, status="queued", next_attempt_at=now - dt.timedelta(minutes=5))
    DeliveryFactory(channel=mail, status="queued", next_attempt_at=now - dt.timedelta(minutes=1))
    DeliveryFactory(channel=mail, status="queued", next_attempt_at=now + dt.timedelta(hours=1))
    DeliveryFactory(channel=hooks, status="dead")

    families = scrape(client)

    deliveries = samples(families["publishing_deliveries"])
    assert deliveries[(("channel", "mail"), ("status", "sent"))] == 3
    assert deliveries[(("channel", "mail"), ("status", "queued"))] == 3
    assert deliveries[(("channel", "hooks"), ("status", "dead"))] == 1
    depth = samples(families["publishing_delivery_queue_depth"])
    assert depth == {(("channel", "mail"),): 2, (("channel", "hooks"),): 0}
    age = samples(families["publishing_delivery_oldest_queued_age_seconds"])
    assert 299 <= age[(("channel", "mail"),)] < 330
    assert age[(("channel", "hooks"),)] == 0
    assert Delivery.objects.count() == 7


def test_circuit_states_are_one_hot_per_channel(client: Client, metrics_on: None) -> None:
    ChannelFactory(name="broken", circuit_state=Channel.CircuitState.OPEN)
    ChannelFactory(name="fine", is_enabled=False)

    families = scrape(client)

    circuit = samples(families["publishing_channel_circuit_state"])
    assert circuit[(("channel", "broken"), ("state", "open"))] == 1
    assert circuit[(("channel", "broken"), ("state", "closed"))] == 0
    assert circuit[(("channel", "fine"), ("state", "closed"))] == 1
    enabled = samples(families["publishing_channel_enabled"])
    assert enabled == {(("channel", "broken"),): 1, (("channel", "fine"),): 0}


def test_workers_send_latency_is_a_histogram_per_channel(
    client: Client,
    metrics_on: None,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
) -> None:
    add_subscribers(topic, 30)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    batches.send_batch(smtp_channel.pk)

    families = scrape(client)

    latency = families["publishing_delivery_send_seconds"]
    label = (("channel", smtp_channel.name),)
    count = samples(latency, "publishing_delivery_send_seconds_count")[label]
    total = samples(latency, "publishing_delivery_send_seconds_sum")[label]
    buckets = {
        dict(s.labels)["le"]: s.value
        for s in latency.samples
        if s.name.endswith("_bucket") and s.labels["channel"] == smtp_channel.name
    }
    assert count == 30 == len(sink.messages)
    assert buckets["+Inf"] == 30
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative
    assert 0 < total < 30
    assert SendStat.objects.get(channel=smtp_channel, key="latency_count").value == 30


def test_throttled_answers_are_counted_per_channel(
    client: Client, metrics_on: None, topic: Topic, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    channel = save_channel(
        Channel(name="hook", kind="webhook"),
        {"url": httpserver.url_for("/hook"), "secret": WHSEC},
    )
    fanout.plan_dispatch(make_dispatch(topic).pk)

    batches.send_batch(channel.pk)

    throttled = samples(scrape(client)["publishing_delivery_throttled"])
    assert throttled == {(("channel", "hook"),): 1}
    assert Delivery.objects.get(channel=channel).status == Delivery.Status.QUEUED


def test_a_malformed_allowed_network_is_refused_by_name(settings: Any) -> None:
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8", "not-a-network"]

    errors = check_metrics_access()

    assert [e.id for e in errors] == ["channels.E005"]
    assert "METRICS_ALLOWED_IPS: 'not-a-network'" in errors[0].msg


def test_ses_feedback_is_counted_by_type_and_subtype(
    client: Client, metrics_on: None, sns: SnsPeer
) -> None:
    for event in (
        bounce("notification", ["a@example.com"]),
        bounce("event", ["b@example.com"]),
        bounce("event", ["c@example.com"], "Transient"),
        complaint("notification", ["d@example.com"]),
    ):
        posted = client.post(
            "/hooks/ses/", data=json.dumps(sns.notification(event)), content_type="text/plain"
        )
        assert posted.status_code == 200

    feedback = samples(scrape(client)["publishing_ses_feedback"], "publishing_ses_feedback_total")

    assert feedback == {
        (("subtype", "Permanent"), ("type", "bounce")): 2,
        (("subtype", "Transient"), ("type", "bounce")): 1,
        (("subtype", "abuse"), ("type", "complaint")): 1,
    }
