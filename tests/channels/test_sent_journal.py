"""The sent journal (decision 0039): accepted messages are recovered, never sent again."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from channels.backends.base import JournalUnavailableError, Outcome, OutcomeStatus
from channels.engine import batches, fanout, journal, outcomes, sweeper
from channels.models import Channel, Delivery
from publishing.models import Topic
from tests.channels.conftest import SmtpSink, add_subscribers, claimed_batch, make_dispatch

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(minutes=5)


@pytest.fixture
def redis_journal(settings: Any) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """The sent journal on Redis (database 12, emptied after the test): a lease and a row
    creation time five seconds before it."""
    settings.DELIVERY_JOURNAL_URL = "redis://127.0.0.1:6379/12"
    store = journal.store()
    assert store is not None
    lease = timezone.now()
    try:
        yield lease, lease - dt.timedelta(seconds=5)
    finally:
        store.clear()


def test_the_send_loop_journals_each_accepted_message_before_handing_over_the_next(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    add_subscribers(topic, 5)
    fanout.plan_dispatch(make_dispatch(topic).pk)
    ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
    journaled_when_received: list[set[int]] = []

    def answer(content: bytes, rcpt: list[str]) -> None:
        journaled_when_received.append(set(journal.accepted((pk, None) for pk in ids)))

    sink.answer = answer
    report = batches.send_batch(smtp_channel.pk)

    assert report.outcomes == {Delivery.Status.SENT: 5}
    # The sink sees message n once the n-1 messages before it are in the journal.
    assert [len(seen) for seen in journaled_when_received] == [0, 1, 2, 3, 4]
    assert journaled_when_received[-1] < set(ids)
    # Once the batch's UPDATE has recorded them, their entries are gone.
    assert journal.accepted((pk, None) for pk in ids) == {}
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SENT}


def test_with_pipelining_each_message_is_journaled_before_its_content_follows_the_next_envelope(
    topic: Topic,
) -> None:
    from aiosmtpd.controller import Controller

    from tests.channels.conftest import free_port, make_smtp_channel

    sink = SmtpSink(pipelining=True)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    try:
        channel = make_smtp_channel(port)
        add_subscribers(topic, 6)
        fanout.plan_dispatch(make_dispatch(topic).pk)
        ids = list(Delivery.objects.order_by("pk").values_list("pk", flat=True))
        journaled_when_received: list[int] = []
        sink.answer = lambda content, rcpt: journaled_when_received.append(
            len(journal.accepted((pk, None) for pk in ids))
        )

        report = batches.send_batch(channel.pk)
    finally:
        controller.stop()

    assert report.outcomes == {Delivery.Status.SENT: 6}
    assert journaled_when_received == [0, 1, 2, 3, 4, 5]
    assert sink.delivery_ids() == dict.fromkeys(ids, 1)


def test_the_sweeper_records_as_sent_what_a_dead_worker_had_handed_over(
    topic: Topic, smtp_channel: Channel
) -> None:
    rows, lease = claimed_batch(topic, smtp_channel, 4)
    # The worker had the first two accepted, then died before recording its batch.
    journal.record(rows[0].pk, "250 queued as A", lease)
    journal.record(rows[1].pk, "250 queued as B", lease)

    with time_machine.travel(timezone.now() + LATER):
        report = sweeper.sweep()

    assert (report.recovered, report.requeued, report.dead) == (2, 2, 0)
    recorded = dict(Delivery.objects.values_list("pk", "provider_message_id"))
    assert recorded[rows[0].pk] == "250 queued as A"
    assert recorded[rows[1].pk] == "250 queued as B"
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert [statuses[row.pk] for row in rows] == ["sent", "sent", "queued", "queued"]
    sent = Delivery.objects.get(pk=rows[0].pk)
    assert sent.sent_at is not None and sent.sent_at <= timezone.now()
    assert sent.lease_expires_at is None
    assert journal.accepted((row.pk, None) for row in rows) == {}


def test_a_worker_that_outlived_its_lease_changes_and_counts_nothing_afterwards(
    topic: Topic, smtp_channel: Channel
) -> None:
    rows, lease = claimed_batch(topic, smtp_channel, 3)
    journal.record(rows[0].pk, "250 A", lease)
    with time_machine.travel(timezone.now() + LATER):
        sweeper.sweep()
    before = list(Delivery.objects.order_by("pk").values_list("status", "attempts", "sent_at"))

    # The old worker wakes up and records its batch as it saw it.
    counts = outcomes.record_outcomes(
        rows,
        [
            Outcome(rows[0].pk, OutcomeStatus.SENT, provider_message_id="250 A"),
            Outcome(rows[1].pk, OutcomeStatus.SENT, provider_message_id="250 B"),
            Outcome(rows[2].pk, OutcomeStatus.PERMANENT, error="550"),
        ],
        lease,
        timezone.now() + LATER,
    )

    assert counts == {}
    after = list(Delivery.objects.order_by("pk").values_list("status", "attempts", "sent_at"))
    assert after == before
    assert [status for status, _, _ in after] == ["sent", "queued", "queued"]


def test_a_retried_row_the_journal_shows_accepted_is_recorded_and_not_sent_again(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    rows, lease = claimed_batch(topic, smtp_channel, 3)
    later = timezone.now() + LATER
    with time_machine.travel(later):
        sweeper.sweep()  # the journal is still empty: all three go back to the queue
    # ...and only then does the old worker, still alive, get the first one accepted.
    journal.record(rows[0].pk, "250 late", lease)

    with time_machine.travel(later + dt.timedelta(seconds=1)):
        report = batches.send_batch(smtp_channel.pk)

    assert (report.claimed, report.recovered) == (3, 1)
    assert report.outcomes == {Delivery.Status.SENT: 3}
    assert set(sink.delivery_ids()) == {rows[1].pk, rows[2].pk}
    first = Delivery.objects.get(pk=rows[0].pk)
    assert (first.status, first.provider_message_id, first.attempts) == ("sent", "250 late", 2)


def test_a_first_attempt_costs_no_journal_read_and_an_entry_older_than_its_row_is_ignored(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    rows, lease = claimed_batch(topic, smtp_channel, 1)
    row = rows[0]
    journal.record(row.pk, "250 from an earlier row with the same id", lease)
    assert row.created_at is not None

    newer = row.created_at + journal.CLOCK_TOLERANCE + dt.timedelta(seconds=1)
    assert journal.accepted([(row.pk, newer)]) == {}
    assert list(journal.accepted([(row.pk, row.created_at)])) == [row.pk]


def test_a_batch_stops_before_handing_over_what_a_journal_that_is_down_cannot_follow(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.DELIVERY_JOURNAL_URL = "redis://127.0.0.1:1/0"
    add_subscribers(topic, 3)
    fanout.plan_dispatch(make_dispatch(topic).pk)

    with caplog.at_level(logging.WARNING, logger="channels.engine.journal"):
        report = batches.send_batch(smtp_channel.pk)

    # Nothing left that the journal could not have told recovery about: the rows wait.
    assert sink.messages == []
    assert report.outcomes == {Delivery.Status.QUEUED: 3}
    rows = Delivery.objects.all()
    assert {row.last_error for row in rows} == {
        "Not handed over: the sent journal cannot be written."
    }
    assert all(row.uncertain_at is None for row in rows)
    assert len([r for r in caplog.records if "cannot record" in r.getMessage()]) == 1


def test_the_file_journal_is_shared_through_a_folder(settings: Any, tmp_path: Path) -> None:
    settings.DELIVERY_JOURNAL_URL = f"file://{tmp_path / 'journal'}"
    lease = timezone.now()

    assert journal.record(7, "250 ok", lease)
    entry = journal.accepted([(7, None)])[7]
    assert (entry.provider_message_id, entry.lease) == ("250 ok", journal.lease_token(lease))
    assert list((tmp_path / "journal").iterdir())
    journal.forget([7])
    assert journal.accepted([(7, None)]) == {}


def test_without_a_journal_every_expired_row_is_uncertain(
    topic: Topic, smtp_channel: Channel, sink: SmtpSink, settings: Any
) -> None:
    settings.DELIVERY_JOURNAL_URL = "off"
    rows, lease = claimed_batch(topic, smtp_channel, 2)

    assert not journal.is_enabled()
    assert journal.record(rows[0].pk, "250", lease) is False
    with time_machine.travel(timezone.now() + LATER):
        report = sweeper.sweep()
    # Nothing tells what the dead worker had handed over: every row is uncertain, and the
    # SMTP channel's policy (resend) queues them again, marked.
    assert (report.recovered, report.uncertain, report.requeued) == (0, 2, 2)
    assert Delivery.objects.filter(status="queued", uncertain_at__isnull=False).count() == 2


def test_an_entry_written_to_redis_is_read_back_by_recovery(
    redis_journal: tuple[dt.datetime, dt.datetime],
) -> None:
    lease, created = redis_journal
    assert journal.record(424242, "<delivery-424242@example.com>", lease)
    found = journal.accepted([(424242, created)])
    assert found[424242].provider_message_id == "<delivery-424242@example.com>"
    assert found[424242].lease == journal.lease_token(lease)


def test_forgetting_deletes_exactly_the_recorded_entries_from_redis(
    redis_journal: tuple[dt.datetime, dt.datetime],
) -> None:
    lease, created = redis_journal
    for pk in (626261, 626262, 626263):
        assert journal.record(pk, f"250 {pk}", lease)

    journal.forget([626261, 626263])

    left = journal.accepted((pk, created) for pk in (626261, 626262, 626263))
    assert list(left) == [626262]
    # The keys deleted are the cache's own: nothing of the two is left under any name.
    store = journal.store()
    assert store is not None
    assert store.get(journal._key(626261)) is None
    assert store.get(journal._key(626262)) is not None


def test_a_batch_writer_hands_each_in_flight_entry_to_redis_with_the_answers_before_it(
    redis_journal: tuple[dt.datetime, dt.datetime],
) -> None:
    lease, created = redis_journal
    writer = journal.BatchWriter(lease)

    def states() -> dict[int, journal.State]:
        # Redis may take a moment to process the commands it holds.
        for _ in range(100):
            entries = journal.read([(515151, created), (515152, created)])
            if entries and all(e.state != journal.State.IN_FLIGHT for e in entries.values()):
                break
            time.sleep(0.01)
        return {pk: entry.state for pk, entry in entries.items()}

    writer.handing_over(515151)
    # Not closed, its reply not read: the in-flight entry already reached Redis, readable
    # by any other process, before the message is handed over.
    assert states() == {515151: journal.State.IN_FLIGHT}
    writer.answered(Outcome(515151, OutcomeStatus.SENT, "<first@example.com>"))
    # The answer leaves with the next in-flight entry, in one write.
    writer.handing_over(515152)
    assert states() == {515151: journal.State.ACCEPTED, 515152: journal.State.IN_FLIGHT}
    assert journal.accepted([(515151, created)])[515151].provider_message_id == (
        "<first@example.com>"
    )
    writer.answered(Outcome(515152, OutcomeStatus.TRANSIENT, error="SMTP 451: later"))
    writer.close()  # the last answer leaves here
    last = journal.read([(515152, created)])[515152]
    assert (last.state, last.refusal()) == (
        journal.State.REFUSED,
        ("transient", "SMTP 451: later"),
    )
    assert writer.works


def test_a_batch_writer_whose_redis_is_down_refuses_every_hand_over(settings: Any) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.DELIVERY_JOURNAL_URL = f"redis://127.0.0.1:{port}/0"
    writer = journal.BatchWriter(timezone.now())
    with pytest.raises(JournalUnavailableError):
        writer.handing_over(1)
    writer.answered(Outcome(1, OutcomeStatus.TRANSIENT, error="connection failed"))
    with pytest.raises(JournalUnavailableError):
        writer.handing_over(2)
    writer.close()
    assert writer.works is False


def test_an_answer_given_later_waits_for_the_next_write_or_a_flush(
    redis_journal: tuple[dt.datetime, dt.datetime],
) -> None:
    lease, created = redis_journal
    ids = (525251, 525252, 525253)
    writer = journal.BatchWriter(lease)

    def states() -> dict[int, journal.State]:
        time.sleep(0.05)  # what was written has reached Redis
        return {pk: e.state for pk, e in journal.read((pk, created) for pk in ids).items()}

    writer.handing_over(ids[0])
    writer.answered_later(Outcome(ids[0], OutcomeStatus.SENT, "<one@example.com>"))
    assert states() == {ids[0]: journal.State.IN_FLIGHT}  # held by the writer
    writer.handing_over(ids[1])  # one write: the answer, then the next in-flight entry
    assert states() == {ids[0]: journal.State.ACCEPTED, ids[1]: journal.State.IN_FLIGHT}
    writer.answered_later(Outcome(ids[1], OutcomeStatus.PERMANENT, error="SMTP 550: no"))
    writer.flush()  # what a backend calls before it waits for its server
    assert states()[ids[1]] == journal.State.REFUSED
    writer.handing_over(ids[2])
    writer.answered_later(Outcome(ids[2], OutcomeStatus.SENT, "<three@example.com>"))
    writer.close()  # the last held answer leaves here
    assert states() == dict.fromkeys(ids[:1], journal.State.ACCEPTED) | {
        ids[1]: journal.State.REFUSED,
        ids[2]: journal.State.ACCEPTED,
    }
    assert writer.works


def test_an_answer_that_cannot_be_held_stops_the_batch_at_its_next_hand_over(
    redis_journal: tuple[dt.datetime, dt.datetime], monkeypatch: pytest.MonkeyPatch
) -> None:
    lease, created = redis_journal
    writer = journal.BatchWriter(lease)
    writer.handing_over(545451)

    def broken(*args: Any) -> bytes:
        raise ValueError("cannot encode")

    monkeypatch.setattr(journal, "_resp_set", broken)
    # The backend's call returns: the failure is logged and the writer stops working.
    writer.answered_later(Outcome(545451, OutcomeStatus.SENT, "<one@example.com>"))
    assert writer.works is False
    with pytest.raises(JournalUnavailableError):
        writer.handing_over(545452)  # nothing more is handed over
    writer.close()
    entries = journal.read([(545451, created), (545452, created)])
    assert {pk: e.state for pk, e in entries.items()} == {545451: journal.State.IN_FLIGHT}


class MailHoldingSink(SmtpSink):
    """Holds its reply to the ``hold_mail``-th MAIL FROM until ``release_mail`` is set."""

    def __init__(self, hold_mail: int) -> None:
        super().__init__(pipelining=True)
        self.hold_mail = hold_mail
        self.mails = 0
        self.mail_held = threading.Event()
        self.release_mail = threading.Event()

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.mails += 1
        if self.mails == self.hold_mail:
            self.mail_held.set()
            while not self.release_mail.is_set():
                await asyncio.sleep(0.005)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"


def test_while_the_server_holds_the_next_envelopes_reply_the_answer_before_it_is_journaled(
    redis_journal: tuple[dt.datetime, dt.datetime],
) -> None:
    """With PIPELINING, message 2's answer is read with (or before) the replies to message
    3's envelope, and may leave with message 3's in-flight entry. Here the server answers
    message 2's DATA and holds its reply to message 3's MAIL: the worker waits, and a worker
    killed now must find message 2 accepted in the journal, not in flight (decision 0068)."""
    from aiosmtpd.controller import Controller

    from channels.backends.base import Message
    from channels.backends.email_smtp import SmtpBackend
    from tests.channels.conftest import free_port

    lease, created = redis_journal
    sink = MailHoldingSink(hold_mail=3)
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    ids = [535351, 535352, 535353, 535354]
    messages = [
        Message(delivery_id=pk, to=f"r{pk}@example.com", subject="Hi", text=f"m{pk}") for pk in ids
    ]
    writer = journal.BatchWriter(lease)
    backend = SmtpBackend({"host": "127.0.0.1", "port": port, "timeout": 10}, {})
    result: list[Outcome] = []
    worker = threading.Thread(target=lambda: result.extend(backend.send_each(messages, writer)))
    try:
        worker.start()
        assert sink.mail_held.wait(10)
        time.sleep(0.2)  # the worker is waiting for the reply; Redis has what it was sent
        while_held = {pk: e.state for pk, e in journal.read((pk, created) for pk in ids).items()}
        sink.release_mail.set()
        worker.join(timeout=10)
        writer.close()
        backend.close()
    finally:
        sink.release_mail.set()
        controller.stop()

    assert while_held == {ids[0]: journal.State.ACCEPTED, ids[1]: journal.State.ACCEPTED}
    assert [o.status for o in result] == ["sent"] * 4
    assert len(sink.messages) == 4
