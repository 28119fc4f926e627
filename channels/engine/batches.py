"""The send loop: one batch claims its rows, renders them, hands them to the backend with the
sent journal following each hand-over, and records the outcomes (docs/delivery.md)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task

from channels.backends.base import (
    JournalUnavailableError,
    Message,
    Outcome,
    OutcomeStatus,
)
from channels.configuration import build_backend
from channels.engine import guardrails, journal
from channels.engine.attempts import record_attempts
from channels.engine.circuit import enter_circuit, record_channel_health
from channels.engine.claims import ClaimedRow, claim, next_queued_dispatch
from channels.engine.fanout import finish_dispatches
from channels.engine.messages import build_messages
from channels.engine.outcomes import complete_outcomes, record_outcomes
from channels.engine.pacing import send_paced
from channels.engine.queue import SEND_BATCH_TASK, enqueue_due_batches, messages_waiting
from channels.engine.stats import TimedBackend, record_batch
from channels.event_models import EVENT_WEBHOOK_KIND
from channels.models import Channel, Delivery
from events import recorder
from publishing.models import Dispatch

logger = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """What one send_batch did, for logs and tests."""

    channel_id: int
    claimed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    cancelled: int = 0
    #: Retried rows the sent journal showed were already accepted: recorded, not sent again.
    recovered: int = 0
    #: Retried rows held back because the sent journal could not be read.
    held_back: int = 0
    #: Rows of a dispatch a guardrail paused: held, not sent (decision 0085).
    held: int = 0
    #: An event endpoint's batch sent while messages were due: its chain gives the worker
    #: back after this batch (decision 0084).
    yielded: bool = False
    blocked: bool = False
    continued: bool = False


def send_batch(channel_id: int, *, chain: bool = True) -> BatchReport:
    """Claim, render, send and record one batch of a channel's due deliveries.

    The provider is called outside any transaction; outcomes are recorded with a constant
    number of queries per batch. When the batch was full, one more send_batch is enqueued for
    the channel (the chain ends when no work is left; the sweeper restarts lost chains), unless
    ``chain`` is False: then the caller (send_batches) continues it.
    """
    report = BatchReport(channel_id=channel_id)
    channel = Channel.objects.filter(pk=channel_id, is_enabled=True).first()
    if channel is None:
        return report
    now = timezone.now()
    gate = enter_circuit(channel, now)
    if gate == "blocked":
        report.blocked = True
        return report
    trial = gate == "trial"
    limit = _batch_limit(channel, trial=trial)
    rows, lease = claim(channel, limit, now)
    report.claimed = len(rows)
    if not rows:
        if trial:
            # Nothing to test the provider with: let the next batch try again.
            Channel.objects.filter(pk=channel.pk).update(
                circuit_state=Channel.CircuitState.OPEN, circuit_opened_at=None
            )
        return report
    # Events yield to messages: one batch, then the worker goes back to the queue.
    report.yielded = channel.kind == EVENT_WEBHOOK_KIND and messages_waiting(now)
    # What event endpoints listen to, read once for the batch's outcomes and dispatches.
    wanted = recorder.listened()
    outcomes = _send_claimed(channel, rows, lease, now, report, trial=trial, wanted=wanted)
    dispatch_ids = {row.dispatch_id for row in rows if row.dispatch_id is not None}
    last = rows[-1].claim_key
    if dispatch_ids and len(rows) == limit and not trial and last is not None:
        # A full batch: the dispatch the channel's queue goes on with is not finished, and
        # the batch with its last row checks it (decision 0093).
        dispatch_ids.discard(next_queued_dispatch(channel.pk, last))
    if dispatch_ids:
        finish_dispatches(dispatch_ids, wanted=wanted)
    logger.info(
        "Batch of channel %s: %s claimed, %s cancelled, %s found sent in the journal, outcomes %s",
        channel.pk,
        len(rows),
        report.cancelled,
        report.recovered,
        report.outcomes,
    )
    if trial and any(o.status == OutcomeStatus.SENT for o in outcomes):
        # The provider is back: resume at full concurrency.
        report.continued = enqueue_due_batches(channel_id=channel.pk) > 0
    elif len(rows) == limit:
        report.continued = True
        if chain:
            async_task(SEND_BATCH_TASK, channel.pk)
    return report


def _batch_limit(channel: Channel, *, trial: bool) -> int:
    """How many rows this batch claims: the channel's batch size, less for a circuit's trial
    and for a rate-limited channel (DELIVERY_RATE_BATCH_SECONDS of sending at most)."""
    limit = channel.batch_size
    if trial:
        limit = min(limit, settings.DELIVERY_CIRCUIT_TRIAL_SIZE)
    rate = channel.rate_limit_per_second
    if rate:
        limit = min(limit, max(1, int(rate * settings.DELIVERY_RATE_BATCH_SECONDS)))
    return limit


def _send_claimed(
    channel: Channel,
    rows: Sequence[ClaimedRow],
    lease: datetime,
    now: datetime,
    report: BatchReport,
    *,
    trial: bool,
    wanted: frozenset[str] = frozenset(),
) -> list[Outcome]:
    """Render, cancel, send and record the claimed ``rows``; fill ``report``. Returns the
    backend's outcomes (not the journal's or the renderer's)."""
    holding = _of_dispatches(rows, Dispatch.Status.PAUSED)
    if holding:
        # A retry due again while its dispatch is paused: held, not sent (decision 0085).
        report.held = Delivery.objects.filter(pk__in=holding, lease_expires_at=lease).update(
            status=Delivery.Status.HELD, lease_expires_at=None, updated_at=now
        )
        rows = [row for row in rows if row.pk not in holding]
    accepted, unknown = _accepted_before(rows)
    report.recovered = len(accepted)
    report.held_back = len(unknown)
    dropped = _of_dispatches(rows, Dispatch.Status.CANCELLED) - accepted.keys() - unknown
    if dropped:
        # A retry of a dispatch cancelled while it was in flight: cancelled, not sent; one the
        # journal shows accepted is recorded as sent above (decision 0085).
        report.cancelled = Delivery.objects.filter(pk__in=dropped, lease_expires_at=lease).update(
            status=Delivery.Status.CANCELLED,
            lease_expires_at=None,
            last_error="Its dispatch was cancelled before this retry.",
            updated_at=now,
        )
        rows = [row for row in rows if row.pk not in dropped]
    messages, cancelled, failures = build_messages(
        channel, [row for row in rows if row.pk not in accepted and row.pk not in unknown], now
    )
    failures.extend(
        Outcome(pk, OutcomeStatus.TRANSIENT, error="The sent journal cannot be read: held back.")
        for pk in unknown
    )
    if cancelled:
        report.cancelled += Delivery.objects.filter(
            pk__in=[row.pk for row in cancelled], lease_expires_at=lease
        ).update(
            status=Delivery.Status.CANCELLED,
            lease_expires_at=None,
            last_error="The recipient became unreachable before sending.",
            updated_at=now,
        )
    outcomes: list[Outcome] = _send(channel, messages, lease) if messages else []
    if outcomes or failures or accepted:
        done = timezone.now()
        report.outcomes = record_outcomes(
            rows,
            [*outcomes, *failures, *_journal_outcomes(accepted)],
            lease,
            done,
            sent_at={pk: entry.at for pk, entry in accepted.items()},
            policies={channel.pk: channel.effective_uncertain_policy},
            wanted=wanted,
        )
        if outcomes:
            record_channel_health(channel.pk, outcomes, trial=trial, now=done, known=channel)
        if outcomes and channel.kind == EVENT_WEBHOOK_KIND:
            record_attempts(channel, rows, outcomes, done)
        gone = next((outcome for outcome in outcomes if outcome.disable_channel), None)
        if gone is not None:
            Channel.objects.filter(pk=channel.pk).update(
                is_enabled=False, disabled_reason=gone.error[:500], disabled_at=done
            )
            logger.warning("Channel %s disabled: %s", channel.pk, gone.error)
        refused = {o.delivery_id for o in outcomes if o.status == OutcomeStatus.PERMANENT}
        if refused and channel.is_email:
            # A hard bounce at the door: the dispatch's guardrail looks again (decision 0085).
            guardrails.check_soon(
                row.dispatch_id
                for row in rows
                if row.pk in refused
                and row.dispatch_id is not None
                and row.kind == Delivery.Kind.SUBSCRIBER
            )
    return outcomes


def send_batches(channel_id: int) -> int:
    """Run send_batch while its batches come back full, for up to DELIVERY_TASK_SECONDS, then
    hand the rest of the chain to a new task. One task sending several batches saves the
    queue's round trip (enqueue, poll, unpickle) between them. An event endpoint's chain
    hands the rest over after each batch while messages are due (they go first). Returns the
    rows claimed.
    """
    deadline = time.monotonic() + settings.DELIVERY_TASK_SECONDS
    claimed = 0
    while True:
        report = send_batch(channel_id, chain=False)
        claimed += report.claimed
        if not report.continued:
            return claimed
        if report.yielded or time.monotonic() >= deadline:
            # The rest of the chain waits its turn behind the tasks already queued.
            async_task(SEND_BATCH_TASK, channel_id)
            return claimed


def _of_dispatches(rows: Sequence[ClaimedRow], status: str) -> set[int]:
    """The ids of the subscriber rows among ``rows`` whose dispatch had ``status`` at the
    claim."""
    return {
        row.pk
        for row in rows
        if row.kind == Delivery.Kind.SUBSCRIBER and row.dispatch_status == status
    }


def _accepted_before(
    rows: Sequence[ClaimedRow],
) -> tuple[dict[int, journal.Entry], set[int]]:
    """Accepted sent-journal entries of the claimed rows tried before (decision 0039), in one
    read, and the ids of those rows when the journal cannot be read.

    A row on its second attempt or later may have been accepted by a worker that died, or
    outlived its lease, before recording it: such a row is recorded as sent, not sent again;
    while the journal cannot tell, it is not sent at all (decision 0068). First attempts cost
    no read.
    """
    retried = [(row.pk, row.created_at) for row in rows if row.attempts > 1]
    if not retried:
        return {}, set()
    try:
        entries = journal.read(retried)
    except journal.JournalReadError:
        return {}, {pk for pk, _ in retried}
    return {pk: e for pk, e in entries.items() if e.state == journal.State.ACCEPTED}, set()


def _journal_outcomes(accepted: Mapping[int, journal.Entry]) -> list[Outcome]:
    return [
        Outcome(pk, OutcomeStatus.SENT, provider_message_id=entry.provider_message_id)
        for pk, entry in accepted.items()
    ]


class _GivenOutcomes:
    """The sent journal's writer as a backend's Handover, keeping the outcomes given so far
    (a backend that raises mid-batch keeps the answers it had)."""

    def __init__(self, writer: journal.BatchWriter) -> None:
        self.writer = writer
        self.outcomes: list[Outcome] = []

    def handing_over(self, delivery_id: int) -> None:
        self.writer.handing_over(delivery_id)

    def answered(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.writer.answered(outcome)

    def answered_later(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self.writer.answered_later(outcome)

    def flush(self) -> None:
        self.writer.flush()


def _send(channel: Channel, messages: Sequence[Message], lease: datetime) -> list[Outcome]:
    """Call the backend; a crash or a broken configuration is a transient outcome for all.

    With the sent journal on, each message is journaled under ``lease`` as in flight before it
    is handed over and as accepted or refused once answered, before the next one (decisions
    0039 and 0068); a backend crash keeps the outcomes given before it, and a journal that
    fails stops the batch before the next hand-over.
    """
    try:
        backend = TimedBackend(build_backend(channel))
    except Exception as error:
        logger.exception("Channel %s cannot build its backend", channel.pk)
        return [
            Outcome(m.delivery_id, OutcomeStatus.TRANSIENT, error=f"Backend unavailable: {error}")
            for m in messages
        ]
    writer = journal.BatchWriter(lease) if journal.is_enabled() else None
    given = _GivenOutcomes(writer) if writer is not None else None
    try:
        outcomes = send_paced(
            backend, messages, channel.rate_limit_per_second, channel.pk, handover=given
        )
    except JournalUnavailableError as error:
        logger.warning(
            "Channel %s: the sent journal failed; the rest of the batch waits", channel.pk
        )
        answered = {outcome.delivery_id for outcome in given.outcomes} if given else set()
        outcomes = [
            *(given.outcomes if given else []),
            *(
                Outcome(m.delivery_id, OutcomeStatus.TRANSIENT, error=f"Not handed over: {error}.")
                for m in messages
                if m.delivery_id not in answered
            ),
        ]
    except Exception as error:  # a worker boundary: the batch must still be recorded
        logger.exception("Backend of channel %s raised", channel.pk)
        answered = {outcome.delivery_id for outcome in given.outcomes} if given else set()
        outcomes = [
            *(given.outcomes if given else []),
            *(
                Outcome(
                    m.delivery_id,
                    OutcomeStatus.TRANSIENT,
                    error=f"Backend error: {type(error).__name__}",
                )
                for m in messages
                if m.delivery_id not in answered
            ),
        ]
    finally:
        # The journal first: the batch's last answers are buffered there, and SMTP's QUIT waits
        # for a reply.
        if writer is not None:
            writer.close()
        backend.close()
    record_batch(channel.pk, backend.calls, outcomes)
    return complete_outcomes(messages, outcomes)
