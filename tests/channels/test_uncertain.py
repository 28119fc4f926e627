"""Uncertain hand-overs (decision 0068): a message handed over without an answer is counted,
shown, and resolved by its channel's policy; recovery sorts expired leases by the journal."""

from __future__ import annotations

import datetime as dt
from io import StringIO
from typing import Any

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from channels.backends.base import Outcome, OutcomeStatus
from channels.engine import batches, circuit, claims, fanout, journal, queue, sweeper
from channels.models import Channel, Delivery
from publishing.models import Topic
from tests.channels.conftest import (
    SmtpSink,
    add_subscribers,
    free_port,
    make_dispatch,
    make_smtp_channel,
)

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(minutes=5)
METRICS_TOKEN = "metrics-token-0123456789abcdef0123456789"


def claimed_batch(
    topic: Topic, channel: Channel, count: int
) -> tuple[list[claims.ClaimedRow], dt.datetime]:
    add_subscribers(topic, count)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    rows, lease = claims.claim(channel, count, timezone.now())
    return sorted(rows, key=lambda row: row.pk), lease


def write(pk: int, state: journal.State, lease: dt.datetime, detail: str = "") -> None:
    writer = journal.BatchWriter(lease)
    writer.write(journal.Entry(pk, state, writer.lease, timezone.now(), detail))
    writer.close()


def statuses() -> dict[int, tuple[str, bool]]:
    """Each delivery's status and whether it is marked uncertain."""
    return {
        pk: (status, uncertain_at is not None)
        for pk, status, uncertain_at in Delivery.objects.values_list("pk", "status", "uncertain_at")
    }


# --- Recovery -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "in_flight_becomes"),
    [("", ("queued", True)), ("resend", ("queued", True)), ("skip", ("uncertain", True))],
)
def test_the_sweeper_sorts_expired_leases_by_what_the_journal_says(
    topic: Topic, smtp_channel: Channel, policy: str, in_flight_becomes: tuple[str, bool]
) -> None:
    Channel.objects.filter(pk=smtp_channel.pk).update(uncertain_policy=policy)
    rows, lease = claimed_batch(topic, smtp_channel, 6)
    older_claim = lease - dt.timedelta(minutes=10)
    accepted, refused, busy, in_flight, untouched, stale = (row.pk for row in rows)
    write(accepted, journal.State.ACCEPTED, lease, "250 queued as A")
    write(refused, journal.State.REFUSED, lease, "permanent|SMTP 550: no such user")
    write(busy, journal.State.REFUSED, lease, "transient|SMTP 451: try later")
    write(in_flight, journal.State.IN_FLIGHT, lease)
    # An in-flight entry of an earlier claim, already resolved then: this claim never
    # started the row.
    write(stale, journal.State.IN_FLIGHT, older_claim)

    with time_machine.travel(timezone.now() + LATER):
        report = sweeper.sweep()
        now = timezone.now()

    assert statuses() == {
        accepted: ("sent", False),
        refused: ("failed", False),
        busy: ("queued", False),
        in_flight: in_flight_becomes,
        untouched: ("queued", False),
        stale: ("queued", False),
    }
    assert (report.recovered, report.refused, report.uncertain) == (1, 1, 1)
    assert report.requeued == (4 if in_flight_becomes[0] == "queued" else 3)
    rows_now = {row.pk: row for row in Delivery.objects.all()}
    assert rows_now[accepted].provider_message_id == "250 queued as A"
    assert rows_now[refused].last_error == "SMTP 550: no such user"
    assert "after handing the message over" in rows_now[in_flight].last_error
    assert "before sending it" in rows_now[untouched].last_error
    # Queued again for now, not after a backoff: the worker died, the provider did not refuse.
    assert rows_now[untouched].next_attempt_at <= now
    # Every entry of the recorded rows is gone.
    assert journal.read((row.pk, None) for row in rows) == {}


def test_a_skipped_uncertain_delivery_settles_the_dispatch_and_an_operator_can_resend_it(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    Channel.objects.filter(pk=smtp_channel.pk).update(uncertain_policy="skip")
    rows, lease = claimed_batch(topic, smtp_channel, 2)
    write(rows[0].pk, journal.State.IN_FLIGHT, lease)
    write(rows[1].pk, journal.State.ACCEPTED, lease, "250 B")

    with time_machine.travel(timezone.now() + LATER):
        sweeper.sweep()

    delivery = Delivery.objects.get(pk=rows[0].pk)
    assert delivery.status == "uncertain"
    assert delivery.dispatch is not None
    delivery.dispatch.refresh_from_db()
    assert delivery.dispatch.status == "done"
    out = StringIO()
    call_command("dispatch_status", delivery.dispatch.publication.slug, stdout=out)
    assert "Uncertain hand-overs (no answer after sending): 1; 0 resent" in out.getvalue()
    assert "1 not resent" in out.getvalue()

    out = StringIO()
    call_command("retry_deliveries", "--uncertain", stdout=out)
    assert "Re-queued 1 uncertain deliveries." in out.getvalue()
    batches.send_batch(smtp_channel.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.uncertain_at is not None) == ("sent", True)
    assert sink.delivery_ids() == {rows[0].pk: 1}


def test_when_the_journal_cannot_be_read_the_sweeper_leaves_expired_rows_for_later(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    claimed_batch(topic, smtp_channel, 2)
    settings.DELIVERY_JOURNAL_URL = "redis://127.0.0.1:1/0"

    with time_machine.travel(timezone.now() + LATER):
        report = sweeper.sweep()

    assert (report.recovered, report.uncertain, report.requeued) == (0, 0, 0)
    assert set(Delivery.objects.values_list("status", flat=True)) == {"sending"}


def test_a_retried_row_is_held_back_while_the_journal_cannot_be_read(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink, settings: Any
) -> None:
    add_subscribers(topic, 2)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    # The first attempt of both rows was made by a worker that died before recording it.
    Delivery.objects.update(attempts=1)
    settings.DELIVERY_JOURNAL_URL = "redis://127.0.0.1:1/0"

    report = batches.send_batch(smtp_channel.pk)

    assert report.held_back == 2
    assert sink.messages == []
    assert set(Delivery.objects.values_list("status", flat=True)) == {"queued"}


# --- Uncertain outcomes of a live worker ------------------------------------------------------


@pytest.fixture
def slow_sink() -> Any:
    """An SMTP sink that holds its answer to the second message until released."""
    sink = SmtpSink(pipelining=True)
    sink.hold_when = lambda received: received == 2
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        yield sink, port
    finally:
        sink.release.set()
        controller.stop()


@pytest.mark.parametrize(("policy", "becomes"), [("resend", "queued"), ("skip", "uncertain")])
def test_a_reply_that_never_comes_after_the_final_dot_is_uncertain_not_a_failure(
    topic: Topic, slow_sink: tuple[SmtpSink, int], policy: str, becomes: str
) -> None:
    sink, port = slow_sink
    channel = make_smtp_channel(port, uncertain_policy=policy)
    Channel.objects.filter(pk=channel.pk).update(config={**channel.config, "timeout": 0.5})
    add_subscribers(topic, 4)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    ids = sorted(Delivery.objects.values_list("pk", flat=True))

    report = batches.send_batch(channel.pk)

    # The sink has the second message; the worker waited 0.5 s for its "250" and gave up.
    assert sink.delivery_ids() == {ids[0]: 1, ids[1]: 1}
    assert statuses() == {
        ids[0]: ("sent", False),
        ids[1]: (becomes, True),
        ids[2]: ("queued", False),
        ids[3]: ("queued", False),
    }
    assert report.outcomes.get("sent") == 1
    uncertain = Delivery.objects.get(pk=ids[1])
    assert "uncertain" in uncertain.last_error
    assert "SMTP connection lost after the message was handed over" in uncertain.last_error


# --- Showing them -------------------------------------------------------------------------------


def test_uncertain_deliveries_are_shown_by_the_api_the_admin_and_metrics(
    topic: Topic, smtp_channel: Channel, client: Client, django_user_model: Any, settings: Any
) -> None:
    from publishing.api_keys import create_api_key

    settings.METRICS_TOKEN = METRICS_TOKEN
    Channel.objects.filter(pk=smtp_channel.pk).update(uncertain_policy="skip")
    rows, lease = claimed_batch(topic, smtp_channel, 3)
    write(rows[0].pk, journal.State.IN_FLIGHT, lease)
    with time_machine.travel(timezone.now() + LATER):
        sweeper.sweep()
    skipped = Delivery.objects.get(pk=rows[0].pk)
    assert skipped.uncertain_at is not None

    key = create_api_key(
        name="ops", scopes=["deliveries:read", "deliveries:write", "channels:admin"]
    ).key
    auth = {"Authorization": f"Bearer {key}"}
    listed = client.get("/api/v1/deliveries/?status=uncertain", headers=auth).json()
    assert [d["id"] for d in listed["results"]] == [skipped.pk]
    assert listed["results"][0]["uncertain_at"] is not None
    marked = client.get("/api/v1/deliveries/?uncertain=true", headers=auth).json()
    assert [d["id"] for d in marked["results"]] == [skipped.pk]
    channel = client.get(f"/api/v1/channels/{smtp_channel.pk}/", headers=auth).json()
    assert channel["uncertain_policy"] == "skip"
    retried = client.post(f"/api/v1/deliveries/{skipped.pk}/retry/", headers=auth)
    assert retried.status_code == 200
    assert retried.json()["delivery"]["status"] == "queued"

    Delivery.objects.filter(pk=skipped.pk).update(status="uncertain")
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    page = client.get("/admin/channels/delivery/?uncertain=skipped").content.decode()
    assert f"/admin/channels/delivery/{skipped.pk}/change/" in page
    assert f"/admin/channels/delivery/{rows[1].pk}/change/" not in page
    dispatch_page = client.get(
        f"/admin/publishing/dispatch/{skipped.dispatch_id}/change/"
    ).content.decode()
    assert 'id="requeue-uncertain"' in dispatch_page
    assert "1 handed over without an answer" in dispatch_page

    client.logout()
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert metrics.status_code == 200
    text = metrics.content.decode()
    name = smtp_channel.name
    assert f'publishing_deliveries_uncertain{{channel="{name}",resolution="skipped"}} 1.0' in text
    assert f'publishing_deliveries_uncertain{{channel="{name}",resolution="resent"}} 0.0' in text
    assert f'publishing_deliveries{{channel="{name}",status="uncertain"}} 1.0' in text
    assert f'publishing_delivery_last_uncertain_timestamp_seconds{{channel="{name}"}}' in text


def test_slack_and_discord_skip_and_email_and_webhooks_resend_by_default() -> None:
    policies = {
        kind: Channel(kind=kind).effective_uncertain_policy
        for kind in ("email_smtp", "email_ses", "webhook", "slack", "discord")
    }

    assert policies == {
        "email_smtp": "resend",
        "email_ses": "resend",
        "webhook": "resend",
        "slack": "skip",
        "discord": "skip",
    }
    assert Channel(kind="slack", uncertain_policy="resend").effective_uncertain_policy == "resend"


def test_an_uncertain_outcome_counts_against_the_circuit_like_a_transient_one(
    smtp_channel: Channel, settings: Any
) -> None:
    settings.DELIVERY_CIRCUIT_THRESHOLD = 2
    outcomes = [Outcome(i, OutcomeStatus.UNCERTAIN, error="no answer") for i in (1, 2)]

    circuit.record_channel_health(smtp_channel.pk, outcomes, trial=False, now=timezone.now())

    smtp_channel.refresh_from_db()
    assert smtp_channel.circuit_state == Channel.CircuitState.OPEN


def test_a_healthy_channel_that_accepted_the_whole_batch_is_not_written(
    smtp_channel: Channel, django_assert_num_queries: Any
) -> None:
    sent = [Outcome(i, OutcomeStatus.SENT, provider_message_id="250 ok") for i in (1, 2)]
    known = Channel.objects.get(pk=smtp_channel.pk)

    with django_assert_num_queries(0):
        circuit.record_channel_health(
            smtp_channel.pk, sent, trial=False, now=timezone.now(), known=known
        )

    # A channel read with a failure streak, or a batch with a failure, is written.
    Channel.objects.filter(pk=smtp_channel.pk).update(
        consecutive_failures=3, last_error="SMTP 421: busy", last_error_at=timezone.now()
    )
    streak = Channel.objects.get(pk=smtp_channel.pk)
    with django_assert_num_queries(1):
        circuit.record_channel_health(
            smtp_channel.pk, sent, trial=False, now=timezone.now(), known=streak
        )
    healed = Channel.objects.get(pk=smtp_channel.pk)
    assert (healed.consecutive_failures, healed.last_error, healed.last_error_at) == (0, "", None)
    failed = [*sent, Outcome(3, OutcomeStatus.TRANSIENT, error="SMTP 421: busy")]
    circuit.record_channel_health(
        smtp_channel.pk, failed, trial=False, now=timezone.now(), known=healed
    )
    assert Channel.objects.get(pk=smtp_channel.pk).consecutive_failures == 1


# --- Due retries ------------------------------------------------------------------------------


def test_a_retry_wakes_its_channel_once_it_is_due_with_one_query(
    topic: Topic,
    smtp_channel: Channel,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_num_queries: Any,
) -> None:
    from django_q.conf import Conf
    from django_q.models import OrmQ

    monkeypatch.setattr(Conf, "SYNC", False)
    add_subscribers(topic, 3)
    other = make_smtp_channel(free_port(), name="Other", is_default_email=False)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    now = timezone.now()
    rows = list(Delivery.objects.order_by("pk"))
    # One retry due in 2 s, one in an hour; the third row stays due since the fan-out.
    Delivery.objects.filter(pk=rows[0].pk).update(next_attempt_at=now + dt.timedelta(seconds=2))
    Delivery.objects.filter(pk=rows[1].pk).update(next_attempt_at=now + dt.timedelta(hours=1))
    Delivery.objects.filter(pk=rows[2].pk).update(
        next_attempt_at=now - dt.timedelta(minutes=5), channel=other
    )
    OrmQ.objects.all().delete()

    with django_assert_num_queries(3):  # the channels, the one task enqueued, its NOTIFY
        woken = queue.wake_due_channels(now, now + dt.timedelta(seconds=3))

    assert woken == 1
    assert OrmQ.objects.count() == 1
    assert queue.wake_due_channels(now, now + dt.timedelta(seconds=1)) == 0


def test_the_broker_wakes_channels_at_most_once_per_interval(
    topic: Topic, smtp_channel: Channel, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.conf import Conf

    from channels import broker

    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(broker, "_woken_until", None)
    settings.DELIVERY_WAKE_SECONDS = 1.0
    add_subscribers(topic, 1)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    Delivery.objects.update(next_attempt_at=timezone.now() + dt.timedelta(seconds=2))

    with time_machine.travel(timezone.now(), tick=False) as clock:
        assert broker.wake() == 0  # not due yet
        clock.shift(0.5)
        assert broker.wake() == 0  # within the interval: no query at all
        clock.shift(2)
        assert broker.wake() == 1  # due since the last look
        clock.shift(2)
        assert broker.wake() == 0  # already woken for it
