"""Claims: a batch takes its due rows with SELECT ... FOR UPDATE SKIP LOCKED under a lease, as
plain values (decisions 0032 and 0065)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan
from psycopg.types.datetime import TimestamptzLoader

from channels.models import Channel, Delivery, DeliveryQuerySet
from subscribers.models import Subscriber

logger = logging.getLogger(__name__)


#: A claim-order key: (priority, next_attempt_at, id).
ClaimKey = tuple[int, datetime, int]


@dataclass(frozen=True, slots=True)
class ClaimedSubscriber:
    """The subscriber of a claimed row: what rendering needs, nothing else."""

    pk: int
    email: str
    name: str
    token_key: Any
    email_format: str
    tracking_opt_out: bool = False


@dataclass(slots=True)
class ClaimedRow:
    """A delivery as the engine handles it between its claim and its outcome (decision 0065).

    Plain values read with ``values_list``, not a model instance: building a Delivery and its
    Subscriber for each row cost more than rendering its message. The outcome fields
    (``status`` to ``sent_at``) are set by ``record_outcomes`` before they are written.
    """

    pk: int
    kind: str
    dispatch_id: int | None
    channel_id: int
    recipient: str
    raw_message: bytes | memoryview | None
    attempts: int
    status: str
    next_attempt_at: datetime
    lease_expires_at: datetime | None
    last_error: str
    provider_message_id: str
    sent_at: datetime | None
    created_at: datetime | None
    uncertain_at: datetime | None
    #: The A/B subject the message carries (decision 0079); None outside a test.
    variant: int | None
    #: Kind "event": the event the row carries to its endpoint (decision 0084).
    event_id: int | None
    subscriber: ClaimedSubscriber | None = None
    #: The publication version the row renders (None for site mail).
    version_id: int | None = None
    #: The subscriber may still be sent to (``Subscriber.objects.reachable()``) at the claim.
    is_reachable: bool = False
    #: Its dispatch's status at the claim (None for a row of no dispatch): a row of a paused
    #: dispatch is held, one of a cancelled dispatch cancelled, neither sent (decision 0085).
    dispatch_status: str | None = None
    updated_at: datetime | None = None
    #: The translation the row carries (decision 0082); empty: the original.
    language: str = ""
    #: Its place in the claim order when it was claimed, (priority, next_attempt_at, id); None
    #: for rows read outside a claim (the sweeper's recovery, the doctor). The outcome changes
    #: ``next_attempt_at``.
    claim_key: ClaimKey | None = None


#: The columns of a ClaimedRow, in its field order; the claim loads nothing else.
ROW_COLUMNS = (
    "pk",
    "kind",
    "dispatch_id",
    "channel_id",
    "recipient",
    "raw_message",
    "attempts",
    "status",
    "next_attempt_at",
    "lease_expires_at",
    "last_error",
    "provider_message_id",
    "sent_at",
    # The sent journal ignores an entry older than its row (decision 0039).
    "created_at",
    "uncertain_at",
    "variant",
    "event_id",
)

SUBSCRIBER_COLUMNS = (
    "subscriber_id",
    "subscriber__email",
    "subscriber__name",
    "subscriber__token_key",
    "subscriber__email_format",
    "subscriber__tracking_opt_out",
)


#: What ``as_claimed_rows`` reads, in its order.
CLAIMED_VALUES = (
    *ROW_COLUMNS,
    *SUBSCRIBER_COLUMNS,
    "version_id",
    "is_reachable",
    "dispatch_status",
    "language",
)


def _claim_values(queryset: DeliveryQuerySet, *extra: str) -> QuerySet[Delivery, tuple[Any, ...]]:
    """``queryset`` (annotated as ``claimable`` does) as the tuples ``as_claimed_rows`` reads,
    then the ``extra`` fields."""
    return queryset.values_list(*CLAIMED_VALUES, *extra)


def claimed_rows(queryset: DeliveryQuerySet) -> list[ClaimedRow]:
    """The rows of ``queryset`` (annotated with ``version_id``, ``is_reachable`` and
    ``dispatch_status``) as ClaimedRow values, with their subscriber, in the queryset's order."""
    return as_claimed_rows(_claim_values(queryset))


def as_claimed_rows(tuples: Iterable[Sequence[Any]]) -> list[ClaimedRow]:
    """ClaimedRow values from the tuples of ``_claim_values``."""
    width = len(ROW_COLUMNS)
    rows = []
    for values in tuples:
        row = ClaimedRow(*values[:width])
        subscriber = values[width : width + len(SUBSCRIBER_COLUMNS)]
        if subscriber[0] is not None:
            row.subscriber = ClaimedSubscriber(*subscriber)
        row.version_id = values[-4]
        row.is_reachable = bool(values[-3])
        row.dispatch_status = values[-2]
        row.language = values[-1]
        rows.append(row)
    return rows


def dispatch_status() -> F:
    """The row's dispatch's status, read from the dispatch row the claim joins for its
    version anyway: no query of its own (decision 0085)."""
    return F("dispatch__status")


def claimable(channel_id: int, now: datetime, *, lock: bool = True) -> DeliveryQuerySet:
    """The claim's query: the channel's due rows in claim order, locked as they are read,
    skipping rows another worker holds. The order is the ``delivery_due`` index's own
    (channel, priority, next_attempt_at, id), so a claim of 500 reads about 500 index
    entries whatever the queue's length: no sort (tests/channels/test_query_plans.py).
    ``lock`` False: without the locking clause (the caller adds it to the SQL)."""
    reachable = Subscriber.objects.reachable().filter(pk=OuterRef("subscriber_id"))
    queryset = (
        Delivery.objects.due(now)
        .filter(channel_id=channel_id)
        .order_by(*Delivery.CLAIM_ORDER)
        .annotate(
            is_reachable=Exists(reachable),
            version_id=F("dispatch__version_id"),
            dispatch_status=dispatch_status(),
        )
    )
    return queryset.select_for_update(skip_locked=True, of=("self",)) if lock else queryset


@dataclass(slots=True)
class _Position:
    """Where this process's last full batch of a channel ended (decision 0092)."""

    after: ClaimKey
    #: time.monotonic() of this process's last claim of the channel from the queue's start.
    scanned_at: float


#: Per channel: the next claim starts after ``after`` while its last claim from the start is
#: under DELIVERY_CLAIM_RESCAN_SECONDS old. Per process (each worker claims on its own).
_positions: dict[int, _Position] = {}


def forget_positions() -> None:
    """Start every channel's next claim from the queue's start (tests, a new process)."""
    _positions.clear()


def claim(channel: Channel, limit: int, now: datetime) -> tuple[list[ClaimedRow], datetime]:
    """Claim up to ``limit`` due deliveries of the channel for this worker.

    SELECT ... FOR UPDATE SKIP LOCKED: concurrent workers each get different rows, and a row
    becomes ``sending`` with a lease and one more attempt before the transaction commits. The
    rows come back with what sending needs (subscriber, whether they are still reachable,
    version), in one query.
    Returns the claimed rows and the lease, which also identifies this claim.
    """
    lease = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    if connection.vendor == "postgresql":
        rows = _claim_resuming(channel.pk, limit, now, lease)
    else:
        with transaction.atomic():
            rows = _with_claim_keys(
                list(_claim_values(claimable(channel.pk, now)[:limit], *Delivery.CLAIM_ORDER))
            )
            if rows:
                Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(
                    status=Delivery.Status.SENDING,
                    lease_expires_at=lease,
                    attempts=F("attempts") + 1,
                    updated_at=now,
                )
    for row in rows:
        row.status = Delivery.Status.SENDING
        row.lease_expires_at = lease
        row.attempts += 1
    return rows, lease


def _claim_resuming(
    channel_id: int, limit: int, now: datetime, lease: datetime
) -> list[ClaimedRow]:
    """The claim, started after the key where this process's last full batch of the channel
    ended, as long as its last claim from the queue's start is under
    DELIVERY_CLAIM_RESCAN_SECONDS old (decision 0092). Every claimed row leaves a dead entry
    at the front of ``delivery_due`` until VACUUM removes it; a claim from the start walks all
    of them, one from the position none. Rows that sort before the position (site mail, a row
    re-queued with its old time) are found by the next claim from the start: at the latest
    after DELIVERY_CLAIM_RESCAN_SECONDS, or at once after a batch that was not full."""
    position = _positions.get(channel_id)
    clock = time.monotonic()
    if (
        position is not None
        and clock - position.scanned_at >= settings.DELIVERY_CLAIM_RESCAN_SECONDS
    ):
        position = None
    rows = _claim_postgresql(
        channel_id, limit, now, lease, after=position.after if position else None
    )
    last = rows[-1].claim_key if rows else None
    if len(rows) < limit or last is None or settings.DELIVERY_CLAIM_RESCAN_SECONDS <= 0:
        _positions.pop(channel_id, None)
    elif position is None:
        _positions[channel_id] = _Position(last, clock)
    else:
        position.after = last
    return rows


def _claim_postgresql(
    channel_id: int,
    limit: int,
    now: datetime,
    lease: datetime,
    *,
    after: ClaimKey | None = None,
) -> list[ClaimedRow]:
    """The claim as one statement: the ``claimable`` SELECT, locking as it reads, in a WITH
    whose UPDATE marks the rows it returns as sending. One round trip and no transaction of
    its own (a statement is atomic), where a SELECT then an UPDATE of the ids it returned cost
    four (BEGIN, SELECT, UPDATE, COMMIT) and a parameter per row. The values returned are
    those read before the UPDATE, as the two-statement claim had them, in claim order (the
    outer SELECT sorts the batch's rows by the claim-order columns the CTE carries), each with
    its claim-order key. ``after``: only rows whose key is greater."""
    due = claimable(channel_id, now, lock=False)
    if after is not None:
        due = due.filter(_after(after))
    queryset = _claim_values(due[:limit], *Delivery.CLAIM_ORDER)
    compiler = queryset.query.get_compiler(using=queryset.db)
    select, params = compiler.as_sql()
    quote = connection.ops.quote_name
    table = quote(Delivery._meta.db_table)
    locking = connection.ops.for_update_sql(skip_locked=True, of=(table,))
    names = [f"c{index}" for index in range(len(compiler.select))]
    width = len(CLAIMED_VALUES)
    sql = f"""
        WITH claimed ({", ".join(names)}) AS ({select} {locking}),
        taken AS (
            UPDATE {table} SET status = %s, lease_expires_at = %s,
                attempts = {table}.{quote("attempts")} + 1, updated_at = %s
            FROM claimed WHERE {table}.{quote("id")} = claimed.c0
        )
        SELECT * FROM claimed ORDER BY {", ".join(names[width:])}
    """  # noqa: S608 (SQL from the ORM and model metadata; values are parameters)
    with connection.cursor() as cursor:
        if settings.USE_TZ:
            # psycopg's own timestamptz loader (its C version) gives the same aware datetimes
            # in the session's time zone, UTC as Django sets it: Django's registers a Python
            # subclass, about 12 µs a value against 1 (two values a row).
            cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, [*params, Delivery.Status.SENDING, lease, now])
        tuples: Sequence[Sequence[Any]] = cursor.fetchall()
    # What QuerySet iteration does with the rows (results_iter): the fields' converters.
    converters = compiler.get_converters([column[0] for column in compiler.select[:width]])
    if converters:
        tuples = list(compiler.apply_converters(tuples, converters))
    return _with_claim_keys(tuples)


def _with_claim_keys(tuples: Sequence[Sequence[Any]]) -> list[ClaimedRow]:
    """ClaimedRow values from the tuples of ``_claim_values(..., *Delivery.CLAIM_ORDER)``,
    each with its claim-order key (the last three values)."""
    width = len(CLAIMED_VALUES)
    rows = as_claimed_rows(values[:width] for values in tuples)
    for row, values in zip(rows, tuples, strict=True):
        priority, next_attempt_at, pk = values[width:]
        row.claim_key = (priority, next_attempt_at, pk)
    return rows


def next_queued_dispatch(channel_id: int, after: ClaimKey) -> int | None:
    """The dispatch of the channel's first queued row after ``after`` in claim order (None
    when there is none, or it belongs to no dispatch): a dispatch named here still has a row
    to send, so it cannot be finished (decision 0093). One probe of ``delivery_due`` started
    at ``after``, as a resumed claim's: it passes only the rows claimed since (dead entries),
    not the whole queue (tests/channels/test_query_plans.py)."""
    return (
        Delivery.objects.filter(channel_id=channel_id, status=Delivery.Status.QUEUED)
        .filter(_after(after))
        .order_by(*Delivery.CLAIM_ORDER)
        .values_list("dispatch_id", flat=True)
        .first()
    )


def _after(key: ClaimKey) -> TupleGreaterThan:
    """Rows whose claim-order key is greater than ``key``: a row comparison, which
    PostgreSQL uses as the start of a ``delivery_due`` index scan."""
    return TupleGreaterThan(Tuple(*(F(field) for field in Delivery.CLAIM_ORDER)), key)
