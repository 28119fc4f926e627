"""Outcomes: what each message's answer does to its row (sent, retried with backoff, failed, dead,
uncertain by the channel's policy), written for a whole batch in one UPDATE under its lease."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from channels.backends.base import (
    Message,
    Outcome,
    OutcomeStatus,
    UncertainPolicy,
)
from channels.engine import journal
from channels.engine.claims import ClaimedRow
from channels.models import Delivery
from events import recorder
from events.models import EventType

logger = logging.getLogger(__name__)


MAX_ERROR_LENGTH = 1000


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff after ``attempts`` tries, never below ``retry_after``."""
    ceiling = min(
        settings.DELIVERY_BACKOFF_CAP_SECONDS,
        settings.DELIVERY_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0),
    )
    delay = random.uniform(0, ceiling)  # noqa: S311 (jitter, not security)
    return max(delay, retry_after or 0.0)


def _apply_outcome(row: ClaimedRow, outcome: Outcome, now: datetime, policy: str) -> None:
    row.lease_expires_at = None
    row.updated_at = now
    row.last_error = outcome.error[:MAX_ERROR_LENGTH]
    if outcome.status == OutcomeStatus.SENT:
        row.status = Delivery.Status.SENT
        row.provider_message_id = outcome.provider_message_id[:255]
        row.sent_at = now
        row.last_error = ""
    elif outcome.status == OutcomeStatus.PERMANENT:
        row.status = Delivery.Status.FAILED
    elif outcome.status == OutcomeStatus.UNCERTAIN and policy == UncertainPolicy.SKIP:
        # Handed over, no answer, and this channel sends at most once (decision 0068).
        row.uncertain_at = now
        row.status = Delivery.Status.UNCERTAIN
    elif outcome.status == OutcomeStatus.RATE_LIMITED:
        # The provider asked us to slow down: wait as told, without spending an attempt.
        row.status = Delivery.Status.QUEUED
        row.attempts = max(row.attempts - 1, 0)
        wait = outcome.retry_after or settings.DELIVERY_BACKOFF_BASE_SECONDS
        row.next_attempt_at = now + timedelta(seconds=wait)
    else:
        if outcome.status == OutcomeStatus.UNCERTAIN:
            row.uncertain_at = now  # resent: at least once, and counted (decision 0068)
        if row.kind == Delivery.Kind.EVENT:
            _schedule_event_retry(row, outcome, now)
        elif row.attempts >= settings.DELIVERY_MAX_ATTEMPTS:
            row.status = Delivery.Status.DEAD
        else:
            row.status = Delivery.Status.QUEUED
            delay = backoff_seconds(row.attempts, outcome.retry_after)
            row.next_attempt_at = now + timedelta(seconds=delay)


def event_retry_seconds(attempts: int) -> float | None:
    """The wait after an event delivery's ``attempts``-th failed attempt, from
    EVENT_RETRY_SCHEDULE_SECONDS; None when the schedule is over (the delivery is dead)."""
    schedule = settings.EVENT_RETRY_SCHEDULE_SECONDS
    if attempts > len(schedule):
        return None
    return float(schedule[max(attempts, 1) - 1])


def _schedule_event_retry(row: ClaimedRow, outcome: Outcome, now: datetime) -> None:
    """Events follow their own schedule (about three days, decision 0084), not the backoff
    of publications' deliveries; a longer Retry-After is honoured."""
    wait = event_retry_seconds(row.attempts)
    if wait is None:
        row.status = Delivery.Status.DEAD
        return
    row.status = Delivery.Status.QUEUED
    row.next_attempt_at = now + timedelta(seconds=max(wait, outcome.retry_after or 0.0))


#: The columns an outcome writes (besides the lease, cleared, and ``updated_at``), with their
#: SQL types.
OUTCOME_COLUMNS = {
    "status": "varchar",
    "attempts": "integer",
    "next_attempt_at": "timestamptz",
    "last_error": "varchar",
    "provider_message_id": "varchar",
    "sent_at": "timestamptz",
    "uncertain_at": "timestamptz",
}


#: What ``_write`` sets on each row of a batch.
RECORDED_FIELDS = [*OUTCOME_COLUMNS, "lease_expires_at", "updated_at"]


def record_outcomes(
    rows: Sequence[ClaimedRow],
    outcomes: Sequence[Outcome],
    lease: datetime,
    now: datetime,
    *,
    sent_at: Mapping[int, datetime] | None = None,
    policies: Mapping[int, str] | None = None,
    retry_now: bool = False,
    wanted: frozenset[str] | None = None,
) -> dict[str, int]:
    """Write every outcome of a batch in one UPDATE. Returns counts, by final status, of the
    rows written.

    Only rows still held under this claim's lease are written, so a worker that somehow
    outlived its lease can neither overwrite what the sweeper or another worker recorded nor
    count it twice. ``sent_at`` gives the acceptance time of rows recovered from the sent
    journal; the journal entries of every row written are deleted (decision 0039).
    ``policies`` maps channel ids to their uncertain policy (resend when missing);
    ``retry_now`` re-queues rows for now rather than after a backoff (crash recovery).
    Rows that end sent, failed or dead get their ``delivery.*`` event in the same transaction
    when an endpoint listens (``wanted``: what ``events.recorder.listened`` answered, read
    here when not given; decision 0084).
    """
    by_id = {row.pk: row for row in rows}
    changed = []
    for outcome in outcomes:
        row = by_id.get(outcome.delivery_id)
        if row is None:
            continue
        policy = (policies or {}).get(row.channel_id, UncertainPolicy.RESEND)
        _apply_outcome(row, outcome, now, policy)
        if sent_at and row.status == Delivery.Status.SENT and row.pk in sent_at:
            row.sent_at = sent_at[row.pk]
        if retry_now and row.status == Delivery.Status.QUEUED:
            row.next_attempt_at = now
        changed.append(row)
    if not changed:
        return {}
    wanted = recorder.listened() if wanted is None else wanted
    if wanted & DELIVERY_EVENT_TYPES:
        with transaction.atomic():
            written = _write(changed, lease, now)
            recorder.record_many(delivery_events(changed, written), wanted=wanted)
    else:
        written = _write(changed, lease, now)
    counts: dict[str, int] = {}
    for row in changed:
        if row.pk in written:
            counts[row.status] = counts.get(row.status, 0) + 1
    journal.forget(row.pk for row in changed if row.pk in written)
    return counts


#: The event of each final status a delivery may reach in a batch.
STATUS_EVENTS = {
    Delivery.Status.SENT: EventType.DELIVERY_SENT,
    Delivery.Status.FAILED: EventType.DELIVERY_FAILED,
    Delivery.Status.DEAD: EventType.DELIVERY_DEAD,
}
DELIVERY_EVENT_TYPES = frozenset(str(t) for t in STATUS_EVENTS.values())


def delivery_events(rows: Sequence[ClaimedRow], written: set[int]) -> list[recorder.NewEvent]:
    """The ``delivery.*`` events of the rows written: ids and the facts, never the address or
    the provider's error text (it may quote the address). Deliveries of events have none: an
    endpoint failing must not cause events about itself."""
    result = []
    for row in rows:
        event_type = STATUS_EVENTS.get(Delivery.Status(row.status))
        if event_type is None or row.pk not in written or row.kind == Delivery.Kind.EVENT:
            continue
        subscriber_id = row.subscriber.pk if row.subscriber is not None else None
        data = {
            "delivery_id": row.pk,
            "kind": row.kind,
            "dispatch_id": row.dispatch_id,
            "channel_id": row.channel_id,
            "subscriber_id": subscriber_id,
            "status": row.status,
            "attempts": row.attempts,
        }
        result.append(recorder.NewEvent(event_type, data, subscriber_id))
    return result


def _write(changed: Sequence[ClaimedRow], lease: datetime, now: datetime) -> set[int]:
    """One UPDATE of the rows still held under ``lease``; the ids written."""
    if connection.vendor == "postgresql":
        written = _record_postgresql(changed, lease, now)
    else:
        instances = [
            Delivery(pk=row.pk, **{name: getattr(row, name) for name in RECORDED_FIELDS})
            for row in changed
        ]
        count = Delivery.objects.filter(
            status=Delivery.Status.SENDING, lease_expires_at=lease
        ).bulk_update(instances, RECORDED_FIELDS)
        written = {row.pk for row in changed}
        if count < len(changed):
            # Rare (a lease lost): the rows this call wrote are those stamped with its ``now``.
            written = set(
                Delivery.objects.filter(pk__in=written, updated_at=now).values_list("pk", flat=True)
            )
    return written


def _record_postgresql(rows: Sequence[ClaimedRow], lease: datetime, now: datetime) -> set[int]:
    # One UPDATE ... FROM unnest(arrays): one parameter per column, not per column and row.
    # Django's bulk_update builds a CASE per field and row (about 2 ms of Python per row), and
    # a VALUES list of 3,500 placeholders costs psycopg a scan of the query text per batch.
    # A column whose value is the same in every row (in a batch of sent messages, all but
    # the provider's message id) is one value, not an array: psycopg dumps each element of
    # an array in Python, and 3,500 of them cost more than the rest of the statement.
    table = Delivery._meta.db_table
    sources = ["%s::bigint[]"]
    names = ["id"]
    # The ids as an array literal: integers need no quoting, and one string dumps at once.
    arrays: list[Any] = ["{" + ",".join(str(row.pk) for row in rows) + "}"]
    assignments = []
    values: list[Any] = []
    for name, sql_type in OUTCOME_COLUMNS.items():
        column = [getattr(row, name) for row in rows]
        first = column[0]
        if all(value == first for value in column):
            assignments.append(f"{name} = %s::{sql_type}")
            values.append(first)
        else:
            assignments.append(f"{name} = v.{name}")
            sources.append(f"%s::{sql_type}[]")
            names.append(name)
            arrays.append(column)
    sql = f"""
        UPDATE {table} AS d
        SET {", ".join(assignments)}, lease_expires_at = NULL, updated_at = %s
        FROM unnest({", ".join(sources)}) AS v({", ".join(names)})
        WHERE d.id = v.id AND d.status = %s AND d.lease_expires_at = %s
        RETURNING d.id
    """  # noqa: S608 (table and column names from model metadata, values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, now, *arrays, Delivery.Status.SENDING, lease])
        return {int(pk) for (pk,) in cursor.fetchall()}


def complete_outcomes(messages: Sequence[Message], outcomes: Sequence[Outcome]) -> list[Outcome]:
    # A backend that forgot a message must not leave it sending: it is retried.
    seen = {outcome.delivery_id for outcome in outcomes}
    missing = [
        Outcome(m.delivery_id, OutcomeStatus.TRANSIENT, error="The backend returned no outcome.")
        for m in messages
        if m.delivery_id not in seen
    ]
    return [*outcomes, *missing]
