"""Events out (decision 0084): recorded with their change, delivered through the engine to
signed webhook endpoints (Standard Webhooks, verified by the standardwebhooks package), retried
on their schedule, replayed, disabled after failing for days, behind the address guard."""

from __future__ import annotations

import socket
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone
from pytest_httpserver import HTTPServer

from channels import webhook_events
from channels.engine import batches, fanout, relay, sweeper
from channels.exceptions import ChannelConfigurationError
from channels.models import Channel, Delivery, EventAttempt, WebhookEndpoint
from events.models import Event, EventType
from publishing.models import Topic
from subscribers import services as subscriber_services
from subscribers.models import Subscriber
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch
from tests.channels.event_support import make_endpoint, send_events
from tests.conftest import REBINDING_HOST
from tests.factories import SubscriberFactory, UserFactory

pytestmark = [pytest.mark.django_db]

ORIGIN = subscriber_services.Origin(via="test")


def unsubscribe_someone() -> Subscriber:
    subscriber = SubscriberFactory.create()
    subscriber_services.unsubscribe(subscriber, ORIGIN)
    return subscriber


# --- Recorded with the change -----------------------------------------------------------------


def test_an_event_is_recorded_with_its_change_and_not_without_it(httpserver: HTTPServer) -> None:
    endpoint, _receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    subscriber = SubscriberFactory.create()

    with pytest.raises(RuntimeError), transaction.atomic():
        subscriber_services.unsubscribe(subscriber, ORIGIN)
        assert Event.objects.count() == 1  # written inside the change's transaction
        raise RuntimeError("the change rolls back")

    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert Event.objects.count() == 0
    assert relay.relay_events() == 0
    assert Delivery.objects.filter(kind=Delivery.Kind.EVENT).count() == 0

    subscriber_services.unsubscribe(subscriber, ORIGIN)
    subscriber_services.unsubscribe(subscriber, ORIGIN)  # no change, no second event

    [event] = Event.objects.all()
    assert event.type == EventType.SUBSCRIBER_UNSUBSCRIBED
    assert event.data == {
        "subscriber_id": subscriber.pk,
        "status": "unsubscribed",
        "source": subscriber.source,
        "via": "test",
    }
    assert subscriber.email not in str(event.data)
    assert relay.relay_events() == 1
    [delivery] = Delivery.objects.filter(kind=Delivery.Kind.EVENT)
    assert (delivery.event_id, delivery.channel_id) == (event.pk, endpoint.channel_id)


def test_nothing_is_recorded_when_no_enabled_endpoint_listens(httpserver: HTTPServer) -> None:
    endpoint, _ = make_endpoint(httpserver, [EventType.SUBSCRIBER_CREATED])
    unsubscribe_someone()  # a type nobody listens to
    webhook_events.update_endpoint(endpoint, event_types=[EventType.SUBSCRIBER_UNSUBSCRIBED])
    webhook_events.update_endpoint(endpoint, is_enabled=False)
    unsubscribe_someone()  # the listener is disabled

    assert Event.objects.count() == 0


# --- Signed deliveries, verified as a receiver would ------------------------------------------


def test_a_receiver_verifies_every_delivery_across_a_secret_rotation(
    httpserver: HTTPServer,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    [old_secret] = receiver.secrets
    with time_machine.travel(timezone.now(), tick=False) as clock:
        unsubscribe_someone()
        send_events(endpoint)
        new_secret = webhook_events.rotate_secret(endpoint)
        receiver.secrets.append(new_secret)
        unsubscribe_someone()
        send_events(endpoint)
        clock.shift(timedelta(hours=settings.EVENT_SECRET_OVERLAP_HOURS, minutes=1))
        unsubscribe_someone()
        send_events(endpoint)

    first, during, after = receiver.requests
    assert first["verified_by"] == [old_secret]
    # For a day after the rotation, both secrets verify: two signatures, space-separated.
    assert during["verified_by"] == [old_secret, new_secret]
    assert len(during["headers"]["Webhook-Signature"].split(" ")) == 2
    assert after["verified_by"] == [new_secret]
    events = list(Event.objects.order_by("pk"))
    for request, event in zip(receiver.requests, events, strict=True):
        assert request["headers"]["Webhook-Id"] == f"evt_{event.pk}"
        assert request["payload"]["id"] == f"evt_{event.pk}"
        assert request["payload"]["type"] == "subscriber.unsubscribed"
        assert request["payload"]["data"] == event.data
    assert set(Delivery.objects.filter(kind="event").values_list("status", flat=True)) == {"sent"}


def test_each_attempt_keeps_its_status_latency_and_the_answer(httpserver: HTTPServer) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    receiver.status, receiver.answer = 503, "maintenance until 10:00"
    unsubscribe_someone()

    send_events(endpoint)

    [attempt] = EventAttempt.objects.all()
    assert (attempt.outcome, attempt.status_code) == ("transient", 503)
    assert attempt.response_excerpt == "maintenance until 10:00"
    assert attempt.latency_ms is not None and attempt.latency_ms >= 0
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None


# --- Retries on the schedule, then dead ------------------------------------------------------


def test_retries_follow_the_schedule_over_about_three_days_then_the_delivery_is_dead(
    httpserver: HTTPServer,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    receiver.status = 500
    schedule = settings.EVENT_RETRY_SCHEDULE_SECONDS
    start = timezone.now()
    waits: list[float] = []
    with time_machine.travel(start, tick=False) as clock:
        unsubscribe_someone()
        relay.relay_events()
        delivery = Delivery.objects.get(kind=Delivery.Kind.EVENT)
        for _ in range(len(schedule) + 1):
            attempted = timezone.now()
            assert send_events(endpoint).claimed == 1
            delivery.refresh_from_db()
            if delivery.status == Delivery.Status.DEAD:
                break
            waits.append((delivery.next_attempt_at - attempted).total_seconds())
            clock.move_to(delivery.next_attempt_at - timedelta(seconds=1))
            assert send_events(endpoint).claimed == 0  # not a second early
            clock.move_to(delivery.next_attempt_at)
        span = timezone.now() - start

    assert waits == [float(s) for s in schedule]
    assert delivery.status == Delivery.Status.DEAD
    assert delivery.attempts == len(schedule) + 1 == len(receiver.requests)
    assert timedelta(days=2.5) < span < timedelta(days=3.5)
    assert EventAttempt.objects.filter(status_code=500).count() == len(schedule) + 1


# --- Replay -------------------------------------------------------------------------------------


def dead_event(endpoint: WebhookEndpoint) -> Delivery:
    unsubscribe_someone()
    relay.relay_events()
    delivery = Delivery.objects.get(kind=Delivery.Kind.EVENT)
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Delivery.Status.DEAD, attempts=11, last_error="HTTP 500"
    )
    return delivery


def test_the_admin_replays_every_failed_event_since_a_time_and_one_event(
    httpserver: HTTPServer,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    delivery = dead_event(endpoint)
    root = UserFactory.create(username="root", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(root)

    since = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    answer = client.post(
        f"/admin/channels/webhookendpoint/{endpoint.pk}/replay-failed/", {"since": since}
    )

    assert answer.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.QUEUED, 0)
    send_events(endpoint)
    assert len(receiver.requests) == 1

    # One event, even one already sent: again, with the same webhook-id.
    answer = client.post(
        f"/admin/channels/webhookendpoint/{endpoint.pk}/replay/",
        {"event_id": str(delivery.event_id)},
    )
    assert answer.status_code == 302
    send_events(endpoint)
    first, again = receiver.requests
    assert first["headers"]["Webhook-Id"] == again["headers"]["Webhook-Id"]
    page = client.get(f"/admin/channels/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200
    assert (
        b"Recent attempts" in page.content and f"evt_{delivery.event_id}".encode() in page.content
    )


def test_replay_events_replays_one_event_or_the_failed_ones_since_a_time(
    httpserver: HTTPServer,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    delivery = dead_event(endpoint)
    out = StringIO()

    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    call_command("replay_events", "--endpoint", str(endpoint.pk), "--since", since, stdout=out)
    assert "1 failed events since" in out.getvalue()
    send_events(endpoint)
    call_command(
        "replay_events",
        "--endpoint",
        str(endpoint.pk),
        "--event",
        f"evt_{delivery.event_id}",
        stdout=out,
    )
    send_events(endpoint)

    assert len(receiver.requests) == 2
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.SENT
    with pytest.raises(Exception, match="--event: No event evt_999999"):
        call_command("replay_events", "--endpoint", str(endpoint.pk), "--event", "evt_999999")


# --- Five days failing ------------------------------------------------------------------------


def test_an_endpoint_failing_for_five_days_is_disabled_and_its_owner_emailed(
    httpserver: HTTPServer,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    receiver.status = 502
    days = settings.EVENT_ENDPOINT_DISABLE_AFTER_DAYS
    with time_machine.travel(timezone.now(), tick=False) as clock:
        unsubscribe_someone()
        send_events(endpoint)
        clock.shift(timedelta(days=days) - timedelta(minutes=1))
        sweeper.sweep()
        assert Channel.objects.get(pk=endpoint.channel_id).is_enabled
        assert mail.outbox == []
        clock.shift(timedelta(minutes=2))
        sweeper.sweep()
        sweeper.sweep()  # told once

    endpoint.refresh_from_db()
    assert not endpoint.channel.is_enabled
    assert endpoint.disabled_at is not None
    assert "more than 5 days" in endpoint.disabled_reason
    [message] = mail.outbox
    assert message.to == ["owner@example.com"]
    assert endpoint.url in message.subject
    unsubscribe_someone()  # a disabled endpoint gets no new events
    assert Event.objects.count() == 1


def test_a_success_ends_the_failing_streak(httpserver: HTTPServer) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    receiver.status = 500
    unsubscribe_someone()
    send_events(endpoint)
    receiver.status = 204
    unsubscribe_someone()
    Delivery.objects.filter(kind="event").update(next_attempt_at=timezone.now())
    send_events(endpoint)

    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.last_success_at is not None


# --- The address guard --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/hooks", "https://10.0.0.1/hooks", "http://169.254.169.254/latest/"],
)
def test_an_endpoint_on_a_private_loopback_or_metadata_address_is_refused(
    url: str, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(ChannelConfigurationError) as refused:
        webhook_events.create_endpoint(
            webhook_events.EndpointInput(url=url, event_types=["subscriber.created"])
        )
    assert "outbound requests go to public addresses only" in refused.value.errors["url"][0]
    assert WebhookEndpoint.objects.count() == Channel.objects.count() == 0


def test_a_name_resolving_to_a_private_address_is_refused(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    real = socket.getaddrinfo

    def resolve(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hooks.internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.20.30.40", 443))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    with pytest.raises(ChannelConfigurationError) as refused:
        webhook_events.create_endpoint(
            webhook_events.EndpointInput(
                url="https://hooks.internal.example/in", event_types=["subscriber.created"]
            )
        )
    assert "10.20.30.40" in refused.value.errors["url"][0]


def test_the_address_is_checked_again_when_each_request_leaves(
    httpserver: HTTPServer, settings: Any, rebinding_dns: list[str]
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    settings.OUTBOUND_ALLOWED_HOSTS = []
    url = f"http://{REBINDING_HOST}:{httpserver.port}/hooks"
    webhook_events.update_endpoint(endpoint, url=url)  # public when saved
    unsubscribe_someone()

    send_events(endpoint)  # ... loopback when the request leaves

    assert len(rebinding_dns) >= 2 and rebinding_dns[-1] == "127.0.0.1"
    assert receiver.requests == []
    delivery = Delivery.objects.get(kind=Delivery.Kind.EVENT)
    assert delivery.status == Delivery.Status.FAILED
    assert "loopback" in delivery.last_error


# --- Deliveries, dispatches, feedback and tracking as events ----------------------------------


def test_delivery_and_dispatch_events_come_from_the_engine_without_addresses(
    httpserver: HTTPServer, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    endpoint, receiver = make_endpoint(
        httpserver, [EventType.DELIVERY_SENT, EventType.DISPATCH_COMPLETED]
    )
    readers = add_subscribers(topic, 3)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)

    batches.send_batch(smtp_channel.pk)
    send_events(endpoint)

    sent = Event.objects.filter(type=EventType.DELIVERY_SENT)
    assert sorted(e.data["subscriber_id"] for e in sent) == sorted(r.pk for r in readers)
    assert all(e.data["dispatch_id"] == dispatch.pk for e in sent)
    [completed] = Event.objects.filter(type=EventType.DISPATCH_COMPLETED)
    assert completed.data["deliveries"] == {"sent": 3}
    assert len(receiver.requests) == 4
    bodies = str([r["payload"] for r in receiver.requests])
    assert not any(r.email in bodies for r in readers)
    # Deliveries of events cause no events of their own.
    assert Event.objects.count() == 4


def test_opens_and_clicks_go_to_endpoints_people_only_unless_they_ask_for_machines(
    httpserver: HTTPServer, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    from channels import engagement
    from channels.models import EngagementEvent

    people, _ = make_endpoint(httpserver, [EventType.DELIVERY_CLICKED])
    everyone, _ = make_endpoint(
        httpserver, [EventType.DELIVERY_CLICKED], include_machine_events=True
    )
    add_subscribers(topic, 1)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    batches.send_batch(smtp_channel.pk)
    delivery = Delivery.objects.get(kind=Delivery.Kind.SUBSCRIBER)
    later = timezone.now() + timedelta(minutes=10)
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
    for method in ("GET", "HEAD"):
        EngagementEvent.objects.create(
            delivery=delivery,
            kind=EngagementEvent.Kind.CLICK,
            link_index=0,
            occurred_at=later,
            method=method,
            user_agent=browser,
        )

    engagement.classify_pending(now=later + timedelta(minutes=5))

    human = Event.objects.get(is_machine=False, type=EventType.DELIVERY_CLICKED)
    machine = Event.objects.get(is_machine=True)
    assert machine.data["reason"] == "head_request"
    relay.relay_events()
    to = {
        endpoint.pk: set(
            Delivery.objects.filter(channel_id=endpoint.channel_id).values_list(
                "event_id", flat=True
            )
        )
        for endpoint in (people, everyone)
    }
    assert to == {people.pk: {human.pk}, everyone.pk: {human.pk, machine.pk}}


def test_an_erased_subscribers_past_events_are_scrubbed(httpserver: HTTPServer) -> None:
    make_endpoint(
        httpserver,
        [EventType.SUBSCRIBER_UNSUBSCRIBED, EventType.SUBSCRIBER_ERASED],
    )
    subscriber = unsubscribe_someone()
    subscriber_id = subscriber.pk
    [past] = Event.objects.all()
    assert past.subscriber_id == subscriber_id

    subscriber_services.erase_subscriber(subscriber, ORIGIN)

    past.refresh_from_db()
    assert past.subscriber_id is None and past.scrubbed_at is not None
    assert past.data["subscriber_id"] is None
    erased = Event.objects.get(type=EventType.SUBSCRIBER_ERASED)
    # The last event names the subscriber, so that integrators erase them too.
    assert erased.data == {"subscriber_id": subscriber_id}


def test_the_owners_email_is_in_the_sites_language(httpserver: HTTPServer, settings: Any) -> None:
    settings.LANGUAGE_CODE = "fr"
    endpoint, _ = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        failing_since=timezone.now() - timedelta(days=6)
    )

    sweeper.sweep()

    [message] = mail.outbox
    assert (
        message.subject == f"Votre point de réception de webhooks a été désactivé : {endpoint.url}"
    )
    assert "depuis plus de 5 jours" in message.body
    assert "rejouez les événements en échec" in message.body


def test_a_410_gone_disables_the_endpoint_with_the_reason(httpserver: HTTPServer) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.SUBSCRIBER_UNSUBSCRIBED])
    receiver.status = 410
    unsubscribe_someone()

    send_events(endpoint)

    endpoint.refresh_from_db()
    assert not endpoint.channel.is_enabled
    assert endpoint.disabled_reason == "The endpoint answered 410 Gone."
    assert Delivery.objects.get(kind=Delivery.Kind.EVENT).status == Delivery.Status.FAILED
    webhook_events.update_endpoint(endpoint, is_enabled=True)
    endpoint.refresh_from_db()
    assert endpoint.channel.is_enabled and endpoint.disabled_reason == ""


def test_the_admin_creates_an_endpoint_showing_its_secret_once_and_names_bad_fields(
    settings: Any,
) -> None:
    root = UserFactory.create(username="root", is_superuser=True, is_staff=True)
    client = Client()
    client.force_login(root)
    settings.OUTBOUND_ALLOWED_HOSTS = []
    form = {
        "url": "http://10.0.0.1/hooks",
        "event_types": ["subscriber.created", "subscriber.erased"],
        "is_enabled": "on",
        "description": "CRM",
    }

    refused = client.post("/admin/channels/webhookendpoint/add/", form)
    assert refused.status_code == 200
    assert "10.0.0.1 is a private address" in refused.content.decode()
    assert not WebhookEndpoint.objects.exists()

    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    form["url"] = "http://127.0.0.1/hooks"
    created = client.post("/admin/channels/webhookendpoint/add/", form, follow=True)
    endpoint = WebhookEndpoint.objects.get()
    secret = webhook_events.channel_secrets(endpoint.channel)["secret"]
    assert secret in created.content.decode()
    assert endpoint.event_types == ["subscriber.created", "subscriber.erased"]
    page = client.get(f"/admin/channels/webhookendpoint/{endpoint.pk}/change/")
    assert secret not in page.content.decode()
    changed = client.post(
        f"/admin/channels/webhookendpoint/{endpoint.pk}/change/",
        {**form, "url": "http://127.0.0.1/other", "event_types": ["subscriber.erased"]},
    )
    assert changed.status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.url, endpoint.event_types) == ("http://127.0.0.1/other", ["subscriber.erased"])
    rotated = client.post(
        f"/admin/channels/webhookendpoint/{endpoint.pk}/rotate/", follow=True
    ).content.decode()
    new = webhook_events.channel_secrets(Channel.objects.get(pk=endpoint.channel_id))["secret"]
    assert new != secret and new in rotated
