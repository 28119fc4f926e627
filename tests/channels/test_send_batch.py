from __future__ import annotations

import datetime as dt
import email
import email.policy
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels.engine import batches, claims, fanout, sweeper
from channels.models import Channel, Delivery
from publishing.models import Dispatch, Topic
from subscribers.models import Subscriber, Suppression
from tests.channels.conftest import (
    SmtpSink,
    add_subscribers,
    body,
    make_dispatch,
    make_smtp_channel,
)
from tests.factories import TopicFactory

pytestmark = pytest.mark.django_db


def publish(topic: Topic, captured: Any) -> Dispatch:
    dispatch = make_dispatch(topic)
    with captured(execute=True):
        fanout.plan_dispatch(dispatch.pk)
    dispatch.refresh_from_db()
    return dispatch


def planned(
    topic: Topic, channel: Channel, readers: int, *, batch_size: int, prefix: str = "reader"
) -> Dispatch:
    """A dispatch to ``readers`` new subscribers of ``topic``, fanned out on ``channel``
    whose batches take ``batch_size`` rows (the hints it enqueues stay uncommitted in a test
    without ``transaction=True``: no task is queued)."""
    Channel.objects.filter(pk=channel.pk).update(batch_size=batch_size)
    add_subscribers(topic, readers, prefix=prefix)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    return dispatch


def test_every_matching_subscriber_gets_exactly_one_message(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    readers = add_subscribers(topic, 120)

    dispatch = publish(topic, django_capture_on_commit_callbacks)

    rows = Delivery.objects.filter(dispatch=dispatch)
    assert rows.count() == 120
    assert set(rows.values_list("status", flat=True)) == {Delivery.Status.SENT}
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)
    assert sorted(sink.recipients) == sorted(r.email for r in readers)
    assert dispatch.status == Dispatch.Status.DONE
    assert all(rows.values_list("provider_message_id", flat=True))


def test_each_message_is_personal_with_unsubscribe_headers_and_a_stable_message_id(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    (reader,) = add_subscribers(topic, 1)
    Subscriber.objects.filter(pk=reader.pk).update(name="Zoë Ünïcode")

    dispatch = publish(topic, django_capture_on_commit_callbacks)

    delivery = Delivery.objects.get(dispatch=dispatch)
    parsed = email.message_from_bytes(sink.messages[0], policy=email.policy.default)
    assert parsed["Message-ID"] == f"<delivery-{delivery.pk}@127.0.0.1>"
    assert parsed["X-Delivery-ID"] == str(delivery.pk)
    assert parsed["To"] == reader.email
    assert parsed["Subject"] == dispatch.publication.title
    assert parsed["List-Unsubscribe"].startswith("<http://127.0.0.1:8000/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = body(sink.messages[0], "plain")
    html = body(sink.messages[0], "html")
    assert "Hello Zoë Ünïcode," in text
    assert "Hello Zoë Ünïcode," in html
    assert "[[[" not in text + html


def test_a_subscriber_without_a_name_is_greeted_without_a_gap(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    (reader,) = add_subscribers(topic, 1)
    Subscriber.objects.filter(pk=reader.pk).update(name="")

    publish(topic, django_capture_on_commit_callbacks)

    text = body(sink.messages[0], "plain")
    html = body(sink.messages[0], "html")
    assert text.startswith("Hello,")
    assert ">Hello,</p>" in html
    assert "Hello ," not in text + html
    assert "[[[" not in text + html


def test_the_one_click_url_carries_the_unsubscribe_token_not_the_preference_token(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from subscribers import tokens

    (reader,) = add_subscribers(topic, 1)

    publish(topic, django_capture_on_commit_callbacks)

    parsed = email.message_from_bytes(sink.messages[0], policy=email.policy.default)
    one_click = str(parsed["List-Unsubscribe"]).strip().split(">")[0].lstrip("<")
    token = one_click.rstrip("/").rsplit("/", 1)[1]
    assert tokens.read_unsubscribe_token(token).subscriber_id == reader.pk
    with pytest.raises(tokens.TokenError):
        tokens.read_manage_token(token)
    text = body(sink.messages[0], "plain")
    assert f"/unsubscribe/{token}/" in text


def test_a_text_only_subscriber_gets_no_html_part(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_subscribers(topic, 1, email_format=Subscriber.EmailFormat.TEXT)

    publish(topic, django_capture_on_commit_callbacks)

    parsed = email.message_from_bytes(sink.messages[0], policy=email.policy.default)
    assert parsed.get_content_type() == "text/plain"
    assert "Hello Reader 0," in parsed.get_content()


def test_a_peer_answering_transient_errors_still_gets_everything_once(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_subscribers(topic, 30)
    refusals: dict[bytes, int] = {}
    replies = ["451 4.3.0 Try again later", "421 4.7.0 Too busy"]

    def answer(content: bytes, rcpt: list[str]) -> str | None:
        key = content.split(b"X-Delivery-ID: ")[1][:12]
        seen = refusals.get(key, 0)
        refusals[key] = seen + 1
        return replies[seen] if seen < len(replies) else None

    sink.answer = answer
    before = timezone.now()
    dispatch = publish(topic, django_capture_on_commit_callbacks)
    rows = Delivery.objects.filter(dispatch=dispatch)
    assert set(rows.values_list("status", "attempts")) == {(Delivery.Status.QUEUED, 1)}
    # Later than the refusal (not than "now": on a loaded machine the shortest backoff may
    # already have passed by the time this line runs).
    first_retry = min(rows.values_list("next_attempt_at", flat=True))
    assert first_retry > before
    assert sink.messages == []

    # Every refusal opens the circuit too: each sweep an hour later sends a trial batch, and
    # once the peer accepts, the chain drains the rest.
    for hours in range(1, 11):
        with time_machine.travel(timezone.now() + dt.timedelta(hours=hours)):
            sweeper.sweep()
        if not rows.exclude(status=Delivery.Status.SENT).exists():
            break

    assert set(rows.values_list("status", "attempts")) == {(Delivery.Status.SENT, 3)}
    assert sink.delivery_ids() == dict.fromkeys(rows.values_list("pk", flat=True), 1)
    assert sink.refused == 60
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE


def test_a_channel_that_recovers_no_longer_shows_its_old_failure(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_subscribers(topic, 3)
    refused: set[bytes] = set()

    def answer(content: bytes, rcpt: list[str]) -> str | None:
        key = content.split(b"X-Delivery-ID: ")[1][:12]
        if key in refused:
            return None
        refused.add(key)
        return "451 4.3.0 Try again later"

    sink.answer = answer
    dispatch = publish(topic, django_capture_on_commit_callbacks)
    smtp_channel.refresh_from_db()
    assert "451" in smtp_channel.last_error
    assert smtp_channel.last_error_at is not None

    rows = Delivery.objects.filter(dispatch=dispatch)
    for hours in range(1, 6):
        with time_machine.travel(timezone.now() + dt.timedelta(hours=hours)):
            sweeper.sweep()
        if not rows.exclude(status=Delivery.Status.SENT).exists():
            break

    assert set(rows.values_list("status", flat=True)) == {Delivery.Status.SENT}
    smtp_channel.refresh_from_db()
    assert smtp_channel.last_error == ""
    assert smtp_channel.last_error_at is None


def test_a_permanent_error_ends_failed_without_retries(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    add_subscribers(topic, 3)
    sink.answer = lambda content, rcpt: (
        "550 5.1.1 No such user" if rcpt == ["reader1@example.com"] else None
    )

    dispatch = publish(topic, django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + dt.timedelta(days=1)):
        report = sweeper.sweep()

    failed = Delivery.objects.get(subscriber__email="reader1@example.com")
    assert (failed.status, failed.attempts) == (Delivery.Status.FAILED, 1)
    assert failed.last_error.startswith("SMTP 550")
    assert sink.refused == 1
    assert report.enqueued == 0
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 2
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE


def test_a_delivery_failing_on_its_last_attempt_is_dead(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.DELIVERY_MAX_ATTEMPTS = 2
    settings.DELIVERY_CIRCUIT_THRESHOLD = 100
    add_subscribers(topic, 2)
    sink.answer = lambda content, rcpt: "451 4.3.0 Try again later"

    publish(topic, django_capture_on_commit_callbacks)
    with time_machine.travel(timezone.now() + dt.timedelta(hours=3)):
        sweeper.sweep()

    assert set(Delivery.objects.values_list("status", "attempts")) == {(Delivery.Status.DEAD, 2)}
    assert sink.refused == 4


def test_an_unsubscribe_between_fan_out_and_send_stops_that_message(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    readers = add_subscribers(topic, 4)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)  # its batches are not run: on-commit is not executed
    Subscriber.objects.filter(pk=readers[0].pk).update(status=Subscriber.Status.UNSUBSCRIBED)
    Suppression.objects.create(email_hash=readers[1].email_hash, reason="bounced")

    report = batches.send_batch(smtp_channel.pk)

    assert report.cancelled == 2
    assert sorted(sink.recipients) == [readers[2].email, readers[3].email]
    statuses = dict(Delivery.objects.values_list("subscriber_id", "status"))
    assert statuses[readers[0].pk] == statuses[readers[1].pk] == Delivery.Status.CANCELLED
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE


def test_a_subscriber_deleted_between_fan_out_and_send_is_cancelled_and_the_rest_sent(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    readers = add_subscribers(topic, 3)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    gone = Delivery.objects.get(subscriber=readers[0])
    Subscriber.objects.filter(pk=readers[0].pk).delete()  # the delivery keeps no subscriber

    rows, lease = claims.claim(smtp_channel, 10, timezone.now())
    by_id = {row.pk: row for row in rows}
    assert by_id[gone.pk].subscriber is None
    kept = next(row for row in rows if row.pk != gone.pk)
    assert kept.subscriber is not None and kept.subscriber.email in {r.email for r in readers}
    assert kept.version_id == dispatch.version_id
    assert (kept.status, kept.attempts, kept.lease_expires_at) == ("sending", 1, lease)
    Delivery.objects.filter(pk__in=by_id).update(status=Delivery.Status.QUEUED, attempts=0)

    report = batches.send_batch(smtp_channel.pk)

    assert (report.claimed, report.cancelled) == (3, 1)
    assert report.outcomes == {Delivery.Status.SENT: 2}
    assert sorted(sink.recipients) == sorted([readers[1].email, readers[2].email])
    assert Delivery.objects.get(pk=gone.pk).status == Delivery.Status.CANCELLED


def test_a_batch_takes_a_constant_number_of_queries_whatever_its_size(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_assert_max_num_queries: Any,
) -> None:
    planned(topic, smtp_channel, 150, batch_size=200)

    with CaptureQueriesContext(connection) as big:
        report = batches.send_batch(smtp_channel.pk)
    other = cast(Topic, TopicFactory(slug="small"))
    add_subscribers(other, 10, prefix="few")
    fanout.plan_dispatch(make_dispatch(other).pk)
    with CaptureQueriesContext(connection) as small:
        batches.send_batch(smtp_channel.pk)

    assert report.claimed == 150
    assert report.outcomes == {Delivery.Status.SENT: 150}
    assert len(sink.messages) == 160
    # Channel, claim (one statement on PostgreSQL: the SELECT and its UPDATE in a WITH),
    # versions (+ body and topics, once per version and process), what event endpoints listen
    # to (decision 0084), record, send metrics, finish dispatch (channel health only when it
    # changes): never one per recipient. SQLite splits the bulk UPDATE by its parameter limit.
    if connection.vendor == "postgresql":
        assert len(big) == len(small) <= 9
    else:
        assert len(big) <= 14


def test_a_batch_of_500_costs_at_most_a_tenth_of_a_statement_per_delivered_message(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    dispatch = planned(topic, smtp_channel, 500, batch_size=500)

    with CaptureQueriesContext(connection) as queries:
        report = batches.send_batch(smtp_channel.pk)

    delivered = Delivery.objects.filter(dispatch=dispatch, status=Delivery.Status.SENT).count()
    assert report.claimed == delivered == len(sink.messages) == 500
    assert len(queries) / delivered <= 0.1


def test_fan_out_takes_the_same_number_of_statements_for_ten_or_five_hundred_subscribers(
    topic: Topic, smtp_channel: Channel, settings: Any
) -> None:
    # One range of subscriber ids; each range adds a fixed number (test_plan_dispatch.py).
    settings.FANOUT_FIRST_RANGE = 1_000_000_000
    few_topic = cast(Topic, TopicFactory(slug="few"))
    add_subscribers(few_topic, 10, prefix="few")
    add_subscribers(topic, 500)
    few, many = make_dispatch(few_topic), make_dispatch(topic)

    with CaptureQueriesContext(connection) as small:
        small_created = fanout.plan_dispatch(few.pk)
    with CaptureQueriesContext(connection) as big:
        big_created = fanout.plan_dispatch(many.pk)

    assert (small_created, big_created) == (10, 500)
    assert Delivery.objects.filter(dispatch=many).count() == 500
    assert len(big) == len(small) <= 17


@pytest.fixture
def black_hole() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP server that accepts connections and never answers: the slowest possible peer."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join()
    for sock in accepted:
        sock.close()
    server.close()


def test_an_open_circuit_keeps_deliveries_waiting_and_does_not_slow_another_channel(
    topic: Topic,
    smtp_sink: tuple[SmtpSink, int],
    black_hole: tuple[int, list[socket.socket]],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.DELIVERY_CIRCUIT_THRESHOLD = 3
    _sink, port = smtp_sink
    slow = make_smtp_channel(black_hole[0], name="Slow", is_default_email=False)
    Channel.objects.filter(pk=slow.pk).update(config={**slow.config, "timeout": 1})
    healthy = make_smtp_channel(port, name="Healthy")
    readers = add_subscribers(topic, 20)
    dispatch = publish(topic, django_capture_on_commit_callbacks)
    Delivery.objects.bulk_create(
        Delivery(dispatch=dispatch, channel=slow, subscriber=r, next_attempt_at=timezone.now())
        for r in readers[:5]
    )

    started = time.monotonic()
    batches.send_batch(slow.pk)  # times out once: 5 transient failures open the circuit
    slow.refresh_from_db()
    assert slow.circuit_state == Channel.CircuitState.OPEN
    assert time.monotonic() - started < 3
    with django_capture_on_commit_callbacks(execute=True):
        second = make_dispatch(topic)
        fanout.plan_dispatch(second.pk)
    Delivery.objects.bulk_create(
        Delivery(dispatch=second, channel=slow, subscriber=r, next_attempt_at=timezone.now())
        for r in readers[:5]
    )
    connections_before = len(black_hole[1])

    started = time.monotonic()
    blocked = batches.send_batch(slow.pk)
    healthy_report = batches.send_batch(healthy.pk)
    elapsed = time.monotonic() - started

    assert blocked.blocked and blocked.claimed == 0
    assert len(black_hole[1]) == connections_before
    assert healthy_report.claimed == 0  # the healthy channel had already sent everything
    assert elapsed < 0.5
    assert Delivery.objects.filter(channel=healthy, status=Delivery.Status.SENT).count() == 40
    waiting = Delivery.objects.filter(channel=slow, dispatch=second)
    assert set(waiting.values_list("status", "attempts")) == {(Delivery.Status.QUEUED, 0)}


def test_a_cooled_circuit_half_opens_for_one_trial_batch_then_closes(
    topic: Topic,
    smtp_sink: tuple[SmtpSink, int],
    settings: Any,
) -> None:
    settings.DELIVERY_CIRCUIT_TRIAL_SIZE = 2
    _sink, port = smtp_sink
    channel = make_smtp_channel(port)
    Channel.objects.filter(pk=channel.pk).update(
        circuit_state=Channel.CircuitState.OPEN,
        circuit_opened_at=timezone.now(),
        consecutive_failures=5,
    )
    add_subscribers(topic, 6)
    fanout.plan_dispatch(make_dispatch(topic).pk)

    assert batches.send_batch(channel.pk).blocked
    with time_machine.travel(timezone.now() + dt.timedelta(minutes=2)):
        trial = batches.send_batch(channel.pk)

    channel.refresh_from_db()
    assert trial.claimed == 2
    assert trial.continued  # the trial succeeded: the chain resumes
    assert channel.circuit_state == Channel.CircuitState.CLOSED
    assert channel.consecutive_failures == 0
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 6


def test_a_failed_trial_opens_the_circuit_again(
    topic: Topic, settings: Any, black_hole: tuple[int, list[socket.socket]]
) -> None:
    channel = make_smtp_channel(black_hole[0])
    Channel.objects.filter(pk=channel.pk).update(
        config={**channel.config, "timeout": 1},
        circuit_state=Channel.CircuitState.OPEN,
        circuit_opened_at=timezone.now() - dt.timedelta(hours=1),
    )
    add_subscribers(topic, 3)
    fanout.plan_dispatch(make_dispatch(topic).pk)

    trial = batches.send_batch(channel.pk)

    channel.refresh_from_db()
    assert trial.claimed == 3 and not trial.continued
    assert channel.circuit_state == Channel.CircuitState.OPEN
    assert channel.last_error.startswith("SMTP connection failed")
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.QUEUED}


def test_one_task_sends_full_batches_until_no_work_is_left(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.conf import Conf
    from django_q.models import OrmQ

    from channels import tasks

    monkeypatch.setattr(Conf, "SYNC", False)
    planned(topic, smtp_channel, 25, batch_size=10)  # its hints stay uncommitted: not enqueued

    claimed = tasks.send_batch(smtp_channel.pk)

    assert claimed == 25 == len(sink.messages)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}
    assert OrmQ.objects.count() == 0  # no hop through the queue between the three batches


def test_a_task_out_of_time_hands_the_rest_of_the_chain_to_a_successor(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from django_q.conf import Conf
    from django_q.models import OrmQ

    from channels import tasks

    monkeypatch.setattr(Conf, "SYNC", False)
    settings.DELIVERY_TASK_SECONDS = 0.000001
    planned(topic, smtp_channel, 25, batch_size=10)

    claimed = tasks.send_batch(smtp_channel.pk)

    assert claimed == 10 == len(sink.messages)
    assert Delivery.objects.filter(status=Delivery.Status.QUEUED).count() == 15
    assert OrmQ.objects.count() == 1


def closing_statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements that tried to close a dispatch (``finish_dispatches``)."""
    table = Dispatch._meta.db_table
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'UPDATE "{table}"')]


def test_a_full_batch_whose_dispatch_goes_on_does_not_try_to_close_it(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    """Decision 0093: closing a dispatch looks for its unsettled rows, which costs more the
    more of them were sent; a full batch followed in the queue by the same dispatch skips it."""
    dispatch = planned(topic, smtp_channel, 25, batch_size=10)

    with CaptureQueriesContext(connection) as queries:
        report = batches.send_batch(smtp_channel.pk, chain=False)

    assert (report.claimed, report.continued) == (10, True)
    assert closing_statements(queries) == []
    # The probe stands in for the check it spares: the same bound as any batch above.
    if connection.vendor == "postgresql":
        assert len(queries) <= 9
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SENDING


def test_a_dispatch_whose_last_rows_fill_a_batch_is_closed_by_that_batch(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    dispatch = planned(topic, smtp_channel, 20, batch_size=10)

    first = batches.send_batch(smtp_channel.pk, chain=False)
    with CaptureQueriesContext(connection) as queries:
        second = batches.send_batch(smtp_channel.pk, chain=False)

    assert (first.claimed, second.claimed) == (10, 10)
    assert len(closing_statements(queries)) == 1
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE
    assert len(sink.messages) == 20


def test_a_full_batch_closes_the_dispatch_that_ended_in_it_not_the_one_going_on(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    short = planned(topic, smtp_channel, 5, batch_size=10)
    other = cast(Topic, TopicFactory(slug="long"))
    long = planned(other, smtp_channel, 20, batch_size=10, prefix="many")

    report = batches.send_batch(smtp_channel.pk, chain=False)

    assert report.claimed == 10
    short.refresh_from_db()
    long.refresh_from_db()
    assert (short.status, long.status) == (Dispatch.Status.DONE, Dispatch.Status.SENDING)
    assert Delivery.objects.filter(dispatch=long, status=Delivery.Status.SENT).count() == 5


def test_a_full_batch_checks_its_dispatch_when_another_worker_holds_the_rest(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    """Two workers share a dispatch's last rows: each batch checks the dispatch after its
    outcomes, so the one recorded last closes it whichever order they finish in."""
    dispatch = planned(topic, smtp_channel, 20, batch_size=10)
    tail = list(
        Delivery.objects.filter(dispatch=dispatch).order_by("pk").values_list("pk", flat=True)
    )[10:]
    # Another worker holds the last ten (claimed, not answered yet).
    Delivery.objects.filter(pk__in=tail).update(status=Delivery.Status.SENDING)

    with CaptureQueriesContext(connection) as queries:
        report = batches.send_batch(smtp_channel.pk, chain=False)

    assert report.claimed == 10
    assert len(closing_statements(queries)) == 1
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SENDING  # the other worker's rows are unsettled
    # That worker's lease runs out; its rows are claimed again and sent by the next batch.
    Delivery.objects.filter(pk__in=tail).update(status=Delivery.Status.QUEUED)
    assert batches.send_batch(smtp_channel.pk, chain=False).claimed == 10
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE
    assert sink.delivery_ids() == dict.fromkeys(
        Delivery.objects.filter(dispatch=dispatch).values_list("pk", flat=True), 1
    )
