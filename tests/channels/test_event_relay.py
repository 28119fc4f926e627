"""The events relay (decision 0084): events are written with their change, and turned into
deliveries of the endpoints that want them after commit, by position, so that none is
skipped when transactions commit out of order and none is doubled."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection, transaction
from django.utils import timezone
from pytest_httpserver import HTTPServer

from channels import broker, webhook_events
from channels.engine import batches, fanout, queue, relay, sweeper
from channels.engine.queue import SEND_BATCH_TASK
from channels.models import Channel, Delivery, WebhookEndpoint
from events import recorder
from events.models import Event, EventType
from publishing.models import Topic
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch
from tests.channels.event_support import make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def relay_by_hand(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks run inline in tests, so each commit's relay hint would relay at once: these tests
    relay by hand, at the moments they choose (except the test of the hint itself)."""
    if "hinted" not in request.node.name:
        monkeypatch.setattr(relay, "hint", lambda: None)


TYPE = EventType.SUBSCRIBER_UNSUBSCRIBED


def record(subscriber_id: int) -> int:
    recorded = recorder.record(TYPE, {"subscriber_id": subscriber_id})
    assert recorded is not None
    return recorded.pk


def relayed(endpoint: WebhookEndpoint) -> list[int]:
    """The events the endpoint has a delivery of, by id."""
    return sorted(
        Delivery.objects.filter(channel_id=endpoint.channel_id).values_list("event_id", flat=True)
    )


@pytest.mark.postgres
def test_an_event_committed_after_a_later_one_is_still_relayed_once(
    httpserver: HTTPServer,
) -> None:
    endpoint, _ = make_endpoint(httpserver, [TYPE])
    recorded_a = threading.Event()
    commit_a = threading.Event()
    ids: dict[str, int] = {}

    def slow_transaction() -> None:
        try:
            with transaction.atomic():
                ids["a"] = record(1)  # the smaller id, committed last
                recorded_a.set()
                assert commit_a.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_transaction)
    thread.start()
    assert recorded_a.wait(10)
    ids["b"] = record(2)  # committed at once

    # "b" waits for the older transaction: an id as the position would have taken "b" and
    # moved past "a", never to come back to it.
    assert relay.relay_events() == 0
    assert relayed(endpoint) == []

    commit_a.set()
    thread.join(10)
    assert relay.relay_events() == 2
    assert relay.relay_events() == 0
    assert relayed(endpoint) == sorted(ids.values())


def test_each_enabled_endpoint_gets_the_events_it_wants_from_its_creation_on(
    httpserver: HTTPServer,
) -> None:
    first, _ = make_endpoint(httpserver, [TYPE])
    other_type, _ = make_endpoint(httpserver, [EventType.SUBSCRIBER_CREATED])
    disabled, _ = make_endpoint(httpserver, [TYPE])
    webhook_events.update_endpoint(disabled, is_enabled=False)
    before = record(1)
    later, _ = make_endpoint(httpserver, [TYPE])
    after = record(2)

    assert relay.relay_events() == 3

    assert relayed(first) == [before, after]
    assert relayed(other_type) == []
    assert relayed(disabled) == []
    assert relayed(later) == [after]  # no history
    # Enabled again, the disabled endpoint gets what comes next, not what it missed.
    webhook_events.update_endpoint(disabled, is_enabled=True)
    third = record(3)
    assert relay.relay_events() == 3
    assert relayed(disabled) == [third]
    assert Delivery.objects.filter(kind=Delivery.Kind.EVENT).count() == 6


def test_a_replayed_event_is_not_queued_twice_by_the_relay(httpserver: HTTPServer) -> None:
    endpoint, _ = make_endpoint(httpserver, [TYPE])
    with transaction.atomic():
        pk = record(1)
        # Replayed before any relay (the admin's "replay this event").
        webhook_events.replay_event(endpoint, pk)
    # In its own transaction the relay takes it too: the unique constraint drops it.
    with transaction.atomic():
        record(2)
        assert relay.relay_events() == 1
    assert relay.relay_events() == 0
    assert len(relayed(endpoint)) == 2


def test_the_events_of_a_send_are_not_written_in_its_batches_and_reach_the_endpoint(
    httpserver: HTTPServer, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [EventType.DELIVERY_SENT])
    add_subscribers(topic, 3)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    deliveries_in_batch: list[int] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "INSERT INTO" in sql and Delivery._meta.db_table in sql:
            deliveries_in_batch.append(1)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(watch):
        batches.send_batch(smtp_channel.pk, chain=False)
    assert deliveries_in_batch == []  # the batch wrote the events only
    assert Event.objects.filter(type=EventType.DELIVERY_SENT).count() == 3

    # The broker's poll relays (as a worker's would, once per DELIVERY_WAKE_SECONDS).
    broker._relayed_at = float("-inf")
    assert broker.relay() == 3
    assert broker.relay() == 0  # within the interval: not again
    batches.send_batch(endpoint.channel_id)
    assert sorted(r["payload"]["data"]["delivery_id"] for r in receiver.requests) == sorted(
        Delivery.objects.filter(kind=Delivery.Kind.SUBSCRIBER).values_list("pk", flat=True)
    )


def test_hinted_after_commit_the_relay_runs_and_the_endpoint_receives_the_events(
    httpserver: HTTPServer,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [TYPE])
    with transaction.atomic():
        pk = record(1)
        assert relayed(endpoint) == []  # nothing before commit
    # The hint's task ran on commit (inline here), then the endpoint's batch.
    assert relayed(endpoint) == [pk]
    assert [r["headers"]["Webhook-Id"] for r in receiver.requests] == [f"evt_{pk}"]


# --- Events yield to messages -------------------------------------------------------------------


def test_while_messages_are_due_events_wait_for_them_at_most_the_limit(
    httpserver: HTTPServer,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.EVENT_RELAY_MAX_WAIT_SECONDS = 60
    monkeypatch.setattr(queue, "async_task", lambda *args: None)  # no worker sends them
    endpoint, _ = make_endpoint(httpserver, [TYPE])
    add_subscribers(topic, 3)
    fanout.plan_dispatch(make_dispatch(topic).pk)  # three messages due, not sent yet
    pk = record(1)

    assert relay.relay_events() == 0  # the send goes first
    later = timezone.now() + timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        assert relay.relay_events() == 1  # not longer than the limit
    assert relayed(endpoint) == [pk]

    second = record(2)
    assert relay.relay_events() == 0
    # While the email channel's circuit is open its messages cannot go: events do not wait.
    Channel.objects.filter(pk=smtp_channel.pk).update(circuit_state=Channel.CircuitState.OPEN)
    third = record(3)
    assert relay.relay_events() == 2
    assert relayed(endpoint) == [pk, second, third]
    Channel.objects.filter(pk=smtp_channel.pk).update(circuit_state=Channel.CircuitState.CLOSED)
    fourth = record(4)
    assert relay.relay_events() == 0
    batches.send_batch(smtp_channel.pk)  # the messages are sent: nothing is due any more
    assert len(sink.messages) == 3
    assert relay.relay_events() == 1
    assert relayed(endpoint) == [pk, second, third, fourth]


def test_an_endpoints_chain_gives_its_worker_back_after_each_batch_while_messages_are_due(
    httpserver: HTTPServer,
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    endpoint, receiver = make_endpoint(httpserver, [TYPE])
    batch = Channel.objects.get(pk=endpoint.channel_id).batch_size
    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(batches, "async_task", lambda *args: queued.append(args))
    monkeypatch.setattr(queue, "async_task", lambda *args: None)  # the test is the worker
    for n in range(batch + 10):
        record(n)
    relay.relay_events()
    add_subscribers(topic, 1)
    fanout.plan_dispatch(make_dispatch(topic).pk)  # a message is due

    assert batches.send_batches(endpoint.channel_id) == batch
    assert queued == [(SEND_BATCH_TASK, endpoint.channel_id)]  # the rest, behind the queue

    batches.send_batch(smtp_channel.pk)  # nothing due but events now: the chain runs on
    queued.clear()
    assert batches.send_batches(endpoint.channel_id) == 10
    assert queued == []
    assert len(receiver.requests) == batch + 10


def test_the_sweeper_relays_what_no_hint_or_poll_did(httpserver: HTTPServer) -> None:
    endpoint, _ = make_endpoint(httpserver, [TYPE])
    pk = record(1)  # its hint is lost (relay_by_hand), and no worker polls here

    assert sweeper.sweep().relayed == 1
    assert relayed(endpoint) == [pk]
    assert sweeper.sweep().relayed == 0
