"""The delivery engine: fan-out, batched sending, retries, circuit breaker, rate limit, sweeper.

The ledger (Delivery rows) is the truth; django-q2 tasks are hints that carry ids. Every step
can run twice, or not at all, without losing or doubling a message: fan-out is one idempotent
INSERT ... SELECT, a batch claims its rows with SELECT ... FOR UPDATE SKIP LOCKED under a lease
longer than any task may run, and the sweeper rebuilds whatever work a lost task or a killed
worker left behind. See docs/delivery.md.
"""

from __future__ import annotations

import logging
import math
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.message import EmailMessage
from django.db import connection, transaction
from django.db.models import Case, Count, Exists, F, Min, OuterRef, Q, Value, When
from django.utils import timezone
from django_q.tasks import async_task

from channels import journal
from channels.backends.base import (
    Backend,
    BackendError,
    Handover,
    JournalUnavailableError,
    Message,
    Outcome,
    OutcomeStatus,
    UncertainPolicy,
    get_backend_class,
)
from channels.backends.email_common import crlf_bytes
from channels.configuration import build_backend
from channels.metrics import TimedBackend, record_batch
from channels.mime import PreparedEmail
from channels.models import Channel, Delivery, DeliveryQuerySet, RateBucket
from publishing.models import Dispatch, Publication
from publishing.rendering import EmailTemplate, render_email, render_for_kind
from subscribers.models import Subscriber, Subscription, Suppression, email_hash
from subscribers.tokens import (
    ManageTokenSigner,
    list_unsubscribe_headers,
    manage_token,
    preferences_url,
    unsubscribe_url,
)

logger = logging.getLogger(__name__)

SEND_BATCH_TASK = "channels.tasks.send_batch"
PLAN_DISPATCH_TASK = "channels.tasks.plan_dispatch"
#: Suppression reasons that stop site mail too (a bulk unsubscribe does not stop a confirmation).
SITE_MAIL_SUPPRESSED = (Suppression.Reason.BOUNCED, Suppression.Reason.COMPLAINED)
MAX_ERROR_LENGTH = 1000


# --- Backends -----------------------------------------------------------------------------------


def get_backend(channel: Channel) -> Backend:
    """An instance of the channel's backend with its decrypted secrets (see configuration)."""
    return build_backend(channel)


def is_broadcast_kind(kind: str) -> bool:
    try:
        return get_backend_class(kind).is_broadcast
    except BackendError:
        return not kind.startswith("email")


def default_email_channel() -> Channel | None:
    """The channel subscribers' email and the site's mail go through (decision 0031).

    The enabled email channel marked default, else the enabled email channel created first.
    """
    return (
        Channel.objects.filter(is_enabled=True, kind__startswith="email")
        .order_by("-is_default_email", "pk")
        .first()
    )


def enqueue(func: str, *args: int) -> None:
    """Hand a task to django-q2 once the current transaction commits (now if there is none)."""
    transaction.on_commit(lambda: async_task(func, *args))


# --- Fan-out ------------------------------------------------------------------------------------


def version_topic_ids(dispatch: Dispatch) -> list[int]:
    """Topics of the exact version sent (its history), else the publication's current topics."""
    through = apps.get_model("publishing", "HistoricalPublication_topics")
    ids = list(
        through.objects.filter(history_id=dispatch.version_id).values_list("topic_id", flat=True)
    )
    if not ids:
        ids = list(dispatch.publication.topics.values_list("pk", flat=True))
    return sorted({i for i in ids if i is not None})


def _fan_out_subscribers(
    dispatch_id: int, channel_id: int, topic_ids: Sequence[int], now: datetime
) -> int:
    # The rule of Subscription.objects.receiving_immediately, in SQL: keep them in step.
    delivery = Delivery._meta.db_table
    subscriber = Subscriber._meta.db_table
    subscription = Subscription._meta.db_table
    suppression = Suppression._meta.db_table
    topics = ", ".join(["%s"] * len(topic_ids))
    sql = f"""
        INSERT INTO {delivery} (kind, dispatch_id, channel_id, subscriber_id, recipient, priority,
            status, attempts, next_attempt_at, last_error, provider_message_id, created_at,
            updated_at)
        SELECT %s, %s, %s, s.id, '', %s, %s, 0, %s, '', '', %s, %s
        FROM {subscriber} s
        WHERE s.status = %s AND s.confirmed_at IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {suppression} x WHERE x.email_hash = s.email_hash)
          AND EXISTS (
            SELECT 1 FROM {subscription} u
            WHERE u.subscriber_id = s.id AND u.topic_id IN ({topics}) AND u.frequency = %s
              AND (u.paused_until IS NULL OR u.paused_until <= %s))
        ON CONFLICT DO NOTHING
    """  # noqa: S608 (table names come from model metadata, values are parameters)
    params: list[Any] = [
        Delivery.Kind.SUBSCRIBER,
        dispatch_id,
        channel_id,
        Delivery.PRIORITY_BULK,
        Delivery.Status.QUEUED,
        now,
        now,
        now,
        Subscriber.Status.ACTIVE,
        *topic_ids,
        Subscription.Frequency.IMMEDIATE,
        timezone.localdate(now),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(max(cursor.rowcount, 0))


def _fan_out_broadcast(
    dispatch_id: int, channel_ids: Sequence[int], topic_ids: Sequence[int], now: datetime
) -> int:
    if not channel_ids:
        return 0
    delivery = Delivery._meta.db_table
    channel_topics = Channel.topics.through._meta.db_table
    channels = ", ".join(["%s"] * len(channel_ids))
    topics = ", ".join(["%s"] * len(topic_ids)) or "NULL"
    sql = f"""
        INSERT INTO {delivery} (kind, dispatch_id, channel_id, subscriber_id, recipient, priority,
            status, attempts, next_attempt_at, last_error, provider_message_id, created_at,
            updated_at)
        SELECT %s, %s, c.id, NULL, '', %s, %s, 0, %s, '', '', %s, %s
        FROM {Channel._meta.db_table} c
        WHERE c.id IN ({channels})
          AND (NOT EXISTS (SELECT 1 FROM {channel_topics} t WHERE t.channel_id = c.id)
               OR EXISTS (SELECT 1 FROM {channel_topics} t
                          WHERE t.channel_id = c.id AND t.topic_id IN ({topics})))
        ON CONFLICT DO NOTHING
    """  # noqa: S608 (table names come from model metadata, values are parameters)
    params: list[Any] = [
        Delivery.Kind.BROADCAST,
        dispatch_id,
        Delivery.PRIORITY_BULK,
        Delivery.Status.QUEUED,
        now,
        now,
        now,
        *channel_ids,
        *topic_ids,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(max(cursor.rowcount, 0))


def plan_dispatch(dispatch_id: int) -> int:
    """Create the deliveries of a dispatch and enqueue the batches that send them.

    Per-subscriber email goes through the default email channel (one INSERT ... SELECT for all
    subscribers); each enabled broadcast channel whose topic filter matches gets one delivery.
    Idempotent: running it again creates nothing new (the unique constraints, ON CONFLICT DO
    NOTHING) and only enqueues hints. Returns the number of deliveries created.
    """
    dispatch = Dispatch.objects.select_related("publication").filter(pk=dispatch_id).first()
    if dispatch is None or dispatch.status == Dispatch.Status.DONE:
        return 0
    now = timezone.now()
    topic_ids = version_topic_ids(dispatch)
    broadcast_ids = [
        channel.pk
        for channel in Channel.objects.filter(is_enabled=True).exclude(kind__startswith="email")
        if is_broadcast_kind(channel.kind)
    ]
    created = 0
    with transaction.atomic():
        email_channel = default_email_channel()
        if email_channel is not None and topic_ids:
            created += _fan_out_subscribers(dispatch.pk, email_channel.pk, topic_ids, now)
        created += _fan_out_broadcast(dispatch.pk, broadcast_ids, topic_ids, now)
        Dispatch.objects.filter(pk=dispatch.pk, status=Dispatch.Status.PLANNING).update(
            status=Dispatch.Status.SENDING, planned_at=now
        )
        transaction.on_commit(lambda: enqueue_due_batches(dispatch_id=dispatch.pk))
    logger.info("Dispatch %s planned: %s deliveries created", dispatch.pk, created)
    finish_dispatches([dispatch.pk])
    return created


def enqueue_due_batches(
    *,
    dispatch_id: int | None = None,
    channel_id: int | None = None,
    stale_before: datetime | None = None,
) -> int:
    """Enqueue send_batch tasks for due deliveries: per channel, enough batches to cover them, at
    most DELIVERY_CHANNEL_CONCURRENCY (each batch continues itself while work remains).

    ``dispatch_id`` and ``channel_id`` limit the count to one dispatch or channel;
    ``stale_before`` to channels whose oldest due delivery has waited since before that time
    (nobody is working on them). Returns the number of tasks enqueued.
    """
    now = timezone.now()
    due = Delivery.objects.due(now).filter(channel__is_enabled=True)
    if dispatch_id is not None:
        due = due.filter(dispatch_id=dispatch_id)
    if channel_id is not None:
        due = due.filter(channel_id=channel_id)
    rows = due.values("channel_id", "channel__batch_size").annotate(
        count=Count("id"), oldest=Min("next_attempt_at")
    )
    enqueued = 0
    for row in rows:
        if stale_before is not None and row["oldest"] > stale_before:
            continue
        batches = math.ceil(row["count"] / max(row["channel__batch_size"], 1))
        for _ in range(min(batches, settings.DELIVERY_CHANNEL_CONCURRENCY)):
            async_task(SEND_BATCH_TASK, row["channel_id"])
            enqueued += 1
    return enqueued


def wake_due_channels(since: datetime, until: datetime) -> int:
    """Enqueue one batch for each enabled channel with queued rows whose next attempt time
    falls in (``since``, ``until``]: retries and rate-limited rows come back when they are
    due, not when the sweeper next notices them. Returns the number of tasks enqueued.

    One query whatever the queue's size: per channel and priority, an index range scan of
    ``delivery_due`` (channel, priority, next_attempt_at), never a scan of the ledger. The
    worker's broker calls it every DELIVERY_WAKE_SECONDS (channels.broker).
    """
    becoming_due = [
        Exists(
            Delivery.objects.filter(
                channel_id=OuterRef("pk"),
                status=Delivery.Status.QUEUED,
                priority=priority,
                next_attempt_at__gt=since,
                next_attempt_at__lte=until,
            )
        )
        for priority in Delivery.PRIORITIES
    ]
    channel_ids = list(
        Channel.objects.filter(is_enabled=True)
        .filter(Q(*becoming_due, _connector=Q.OR))
        .values_list("pk", flat=True)
    )
    for channel_id in channel_ids:
        async_task(SEND_BATCH_TASK, channel_id)
    return len(channel_ids)


def finish_dispatches(dispatch_ids: Iterable[int] | None = None) -> int:
    """Mark done the sending dispatches whose deliveries are all settled. Returns how many."""
    unsettled = Delivery.objects.filter(dispatch_id=OuterRef("pk")).unsettled()
    dispatches = Dispatch.objects.filter(status=Dispatch.Status.SENDING)
    if dispatch_ids is not None:
        dispatches = dispatches.filter(pk__in=list(dispatch_ids))
    return dispatches.exclude(Exists(unsettled)).update(
        status=Dispatch.Status.DONE, finished_at=timezone.now()
    )


# --- Site mail (the ledger email backend) -------------------------------------------------------


def queue_site_mail(email_messages: Sequence[EmailMessage]) -> int:
    """Record each message, once per recipient, as a transactional delivery of the default email
    channel, and enqueue its sending after commit. Returns the number of messages accepted.

    With no enabled email channel, LEDGER_FALLBACK_EMAIL_BACKEND sends them instead.
    """
    channel = default_email_channel()
    if channel is None:
        logger.warning("No enabled email channel: site mail goes to the fallback backend")
        backend = get_connection(settings.LEDGER_FALLBACK_EMAIL_BACKEND)
        return backend.send_messages(email_messages) or 0
    now = timezone.now()
    rows: list[Delivery] = []
    accepted = 0
    for message in email_messages:
        recipients = message.recipients()
        if not recipients:
            continue
        raw = crlf_bytes(message)
        rows.extend(
            Delivery(
                kind=Delivery.Kind.TRANSACTIONAL,
                channel=channel,
                recipient=recipient,
                raw_message=raw,
                priority=Delivery.PRIORITY_TRANSACTIONAL,
                next_attempt_at=now,
            )
            for recipient in recipients
        )
        accepted += 1
    with transaction.atomic():
        Delivery.objects.bulk_create(rows)
        enqueue(SEND_BATCH_TASK, channel.pk)
    return accepted


# --- Rate limit ---------------------------------------------------------------------------------


def reserve_rate(channel_id: int, rate: float, count: int) -> float:
    """Reserve ``count`` sending slots of a channel limited to ``rate`` messages per second.

    The bucket is a GCRA in the database, shared by every worker: each reservation moves the
    channel's theoretical arrival time (``tat``) forward by count/rate, atomically, on the
    database's clock. Returns the seconds to wait before the first reserved slot; slot i
    starts i/rate seconds after it.
    """
    span = count / rate
    if connection.vendor == "postgresql":
        table = RateBucket._meta.db_table
        sql = f"""
            INSERT INTO {table} (channel_id, tat)
            VALUES (%s, EXTRACT(EPOCH FROM clock_timestamp())::float8 + %s)
            ON CONFLICT (channel_id) DO UPDATE
            SET tat = GREATEST({table}.tat, EXTRACT(EPOCH FROM clock_timestamp())::float8) + %s
            RETURNING tat, EXTRACT(EPOCH FROM clock_timestamp())::float8
        """  # noqa: S608 (table name from model metadata)
        with connection.cursor() as cursor:
            cursor.execute(sql, [channel_id, span, span])
            tat, db_now = cursor.fetchone()
        return max(0.0, float(tat) - span - float(db_now))
    # SQLite (development): writes are serialised by the database lock.
    with transaction.atomic():
        bucket, _ = RateBucket.objects.select_for_update().get_or_create(channel_id=channel_id)
        wall = time.time()
        start = max(bucket.tat, wall)
        bucket.tat = start + span
        bucket.save(update_fields=["tat"])
    return max(0.0, start - wall)


def _send_each(
    backend: Backend | TimedBackend,
    messages: Sequence[Message],
    handover: Handover | None,
) -> list[Outcome]:
    """Hand the messages to the backend; with ``handover`` (the sent journal), one at a time,
    reporting each hand-over and each answer before the next message goes (decision 0068)."""
    if handover is None:
        return list(backend.send(messages))
    return backend.send_each(messages, handover)


def send_paced(
    backend: Backend | TimedBackend,
    messages: Sequence[Message],
    rate: float | None,
    channel_id: int,
    sleep: Callable[[float], None] = time.sleep,
    handover: Handover | None = None,
) -> list[Outcome]:
    """Hand the messages to the backend, never faster than ``rate`` per second (if set)."""
    if not rate:
        return _send_each(backend, messages, handover)
    wait = reserve_rate(channel_id, rate, len(messages))
    slice_size = max(1, int(rate * settings.DELIVERY_RATE_SLICE_SECONDS))
    started = time.monotonic() + wait
    outcomes: list[Outcome] = []
    for offset in range(0, len(messages), slice_size):
        delay = started + offset / rate - time.monotonic()
        if delay > 0:
            sleep(delay)
        outcomes.extend(_send_each(backend, messages[offset : offset + slice_size], handover))
    return outcomes


# --- Circuit breaker ----------------------------------------------------------------------------


def _enter_circuit(channel: Channel, now: datetime) -> str:
    """Return "closed" (send), "trial" (this batch tests a half-open circuit) or "blocked"."""
    if channel.circuit_state == Channel.CircuitState.CLOSED:
        return "closed"
    cooled = now - timedelta(seconds=settings.DELIVERY_CIRCUIT_COOLDOWN_SECONDS)
    if channel.circuit_state == Channel.CircuitState.OPEN and (
        channel.circuit_opened_at is None or channel.circuit_opened_at <= cooled
    ):
        # Only one worker wins the conditional update, so only one trial batch runs.
        won = (
            Channel.objects.filter(pk=channel.pk, circuit_state=Channel.CircuitState.OPEN)
            .filter(Q(circuit_opened_at__isnull=True) | Q(circuit_opened_at__lte=cooled))
            .update(circuit_state=Channel.CircuitState.HALF_OPEN, circuit_opened_at=now)
        )
        return "trial" if won else "blocked"
    return "blocked"


def _record_channel_health(
    channel_id: int, outcomes: Sequence[Outcome], *, trial: bool, now: datetime
) -> None:
    """Update the failure streak and the circuit in one statement."""
    answered = [o.status in (OutcomeStatus.SENT, OutcomeStatus.PERMANENT) for o in outcomes]
    # No answer (UNCERTAIN) counts against the provider like a transient failure.
    transient = [o.status in (OutcomeStatus.TRANSIENT, OutcomeStatus.UNCERTAIN) for o in outcomes]
    errors = [o.error for o in outcomes if o.status != OutcomeStatus.SENT and o.error]
    updates: dict[str, Any] = {}
    if errors:
        updates.update(last_error=errors[-1][:MAX_ERROR_LENGTH], last_error_at=now)
    threshold = settings.DELIVERY_CIRCUIT_THRESHOLD
    if any(answered):
        # The provider answers: only the failures after its last answer still count.
        last = max(i for i, ok in enumerate(answered) if ok)
        updates.update(
            consecutive_failures=sum(transient[last + 1 :]),
            circuit_state=Channel.CircuitState.CLOSED,
            circuit_opened_at=None,
        )
    elif any(transient):
        streak = F("consecutive_failures") + sum(transient)
        opens = Q(consecutive_failures__gte=threshold - sum(transient))
        if trial:
            opens = Q(pk__isnull=False)
        updates.update(
            consecutive_failures=streak,
            circuit_state=Case(
                When(opens, then=Value(Channel.CircuitState.OPEN)),
                default=F("circuit_state"),
            ),
            circuit_opened_at=Case(When(opens, then=Value(now)), default=F("circuit_opened_at")),
        )
    elif trial:
        updates.update(circuit_state=Channel.CircuitState.CLOSED, circuit_opened_at=None)
    if updates:
        Channel.objects.filter(pk=channel_id).update(**updates)


# --- Sending ------------------------------------------------------------------------------------


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
    blocked: bool = False
    continued: bool = False


def backoff_seconds(attempts: int, retry_after: float | None = None) -> float:
    """Full-jitter exponential backoff after ``attempts`` tries, never below ``retry_after``."""
    ceiling = min(
        settings.DELIVERY_BACKOFF_CAP_SECONDS,
        settings.DELIVERY_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0),
    )
    delay = random.uniform(0, ceiling)  # noqa: S311 (jitter, not security)
    return max(delay, retry_after or 0.0)


def message_id_domain() -> str:
    return (
        settings.DELIVERY_MESSAGE_ID_DOMAIN or urlsplit(settings.SITE_URL).hostname or "localhost"
    )


#: Rendered versions, per worker process. Keyed by the history row's id *and* date, so a
#: reused id (SQLite reuses them after a delete) can never serve another version's text.
_rendered: dict[tuple[Any, ...], Any] = {}
RENDER_CACHE_SIZE = 32


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    if key not in _rendered:
        if len(_rendered) >= RENDER_CACHE_SIZE:
            _rendered.clear()
        _rendered[key] = build()
    return _rendered[key]


def load_versions(rows: Sequence[ClaimedRow]) -> dict[int, Any]:
    """The publication versions the rows need, in one query, without their bodies (a body is
    read only when that version is rendered for the first time in this process)."""
    ids = {row.version_id for row in rows} - {None}
    if not ids:
        return {}
    versions = Publication.history.model.objects.filter(history_id__in=ids).defer("body")
    return {version.history_id: version for version in versions}


def _email_template(version: Any, from_email: str) -> PreparedEmail:
    key = ("email", version.history_id, version.history_date, from_email)
    prepared: PreparedEmail = _cached(
        key, lambda: PreparedEmail.prepare(render_email(version), from_email)
    )
    return prepared


def _broadcast_payload(version: Any, kind: str) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        payload = render_for_kind(version, kind)
        if isinstance(payload, EmailTemplate):
            return {"subject": payload.subject, "text": payload.text}
        return payload

    result: dict[str, Any] = _cached((kind, version.history_id, version.history_date), build)
    return result


@dataclass(frozen=True, slots=True)
class ClaimedSubscriber:
    """The subscriber of a claimed row: what rendering needs, nothing else."""

    pk: int
    email: str
    name: str
    status: str
    confirmed_at: datetime | None
    token_key: Any
    email_format: str


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
    subscriber: ClaimedSubscriber | None = None
    #: The publication version the row renders (None for site mail).
    version_id: int | None = None
    #: The subscriber's address is suppressed (bounced, complained, unsubscribed everywhere).
    is_suppressed: bool = False
    updated_at: datetime | None = None


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
)
SUBSCRIBER_COLUMNS = (
    "subscriber_id",
    "subscriber__email",
    "subscriber__name",
    "subscriber__status",
    "subscriber__confirmed_at",
    "subscriber__token_key",
    "subscriber__email_format",
)


def claimed_rows(queryset: DeliveryQuerySet) -> list[ClaimedRow]:
    """The rows of ``queryset`` (annotated with ``version_id`` and ``is_suppressed``) as
    ClaimedRow values, with their subscriber, in the queryset's order."""
    width = len(ROW_COLUMNS)
    rows = []
    for values in queryset.values_list(
        *ROW_COLUMNS, *SUBSCRIBER_COLUMNS, "version_id", "is_suppressed"
    ):
        row = ClaimedRow(*values[:width])
        subscriber = values[width : width + len(SUBSCRIBER_COLUMNS)]
        if subscriber[0] is not None:
            row.subscriber = ClaimedSubscriber(*subscriber)
        row.version_id = values[-2]
        row.is_suppressed = bool(values[-1])
        rows.append(row)
    return rows


def claim(channel: Channel, limit: int, now: datetime) -> tuple[list[ClaimedRow], datetime]:
    """Claim up to ``limit`` due deliveries of the channel for this worker.

    SELECT ... FOR UPDATE SKIP LOCKED: concurrent workers each get different rows, and a row
    becomes ``sending`` with a lease and one more attempt before the transaction commits. The
    rows come back with what sending needs (subscriber, suppression, version), in one query.
    Returns the claimed rows and the lease, which also identifies this claim.
    """
    lease = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    suppressed = Suppression.objects.filter(email_hash=OuterRef("subscriber__email_hash"))
    with transaction.atomic():
        rows = claimed_rows(
            Delivery.objects.due(now)
            .filter(channel_id=channel.pk)
            .order_by("priority", "next_attempt_at", "pk")
            .annotate(is_suppressed=Exists(suppressed), version_id=F("dispatch__version_id"))
            .select_for_update(skip_locked=True, of=("self",))[:limit]
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


_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_\-:.]+")


@dataclass(frozen=True)
class SubscriberLinks:
    """The preference and unsubscribe links and List-Unsubscribe headers of a batch.

    subscribers.tokens builds them once around a sample token; each recipient's are then the
    same strings with their own token in its place (three reverse() calls per recipient cost
    more than the whole MIME message). A token outside the signing alphabet, which reverse()
    would have to quote, goes through subscribers.tokens directly.
    """

    sample: str
    preferences: list[str]
    unsubscribe: list[str]
    headers: dict[str, list[str]]
    #: Signs each recipient's manage token with a key derived once per batch.
    sign: ManageTokenSigner

    @classmethod
    def build(cls) -> SubscriberLinks:
        sample = manage_token(0, "00000000-0000-0000-0000-000000000000")
        return cls(
            sample=sample,
            preferences=preferences_url(sample).split(sample),
            unsubscribe=unsubscribe_url(sample).split(sample),
            headers={k: v.split(sample) for k, v in list_unsubscribe_headers(sample).items()},
            sign=ManageTokenSigner(),
        )

    def for_token(self, token: str) -> tuple[str, str, dict[str, str]]:
        """(preferences URL, unsubscribe URL, List-Unsubscribe headers) for ``token``."""
        if (
            len(self.preferences) < 2
            or len(self.unsubscribe) < 2
            or not _TOKEN_ALPHABET.fullmatch(token)
        ):
            return preferences_url(token), unsubscribe_url(token), list_unsubscribe_headers(token)
        return (
            token.join(self.preferences),
            token.join(self.unsubscribe),
            {key: token.join(parts) for key, parts in self.headers.items()},
        )


def _reachable(row: ClaimedRow) -> bool:
    """The row's subscriber may still be sent to: active, confirmed, address not suppressed."""
    subscriber = row.subscriber
    return (
        subscriber is not None
        and subscriber.status == Subscriber.Status.ACTIVE
        and subscriber.confirmed_at is not None
        and not row.is_suppressed
    )


def _subscriber_message(
    row: ClaimedRow,
    version: Any,
    from_email: str,
    date: str,
    links: SubscriberLinks,
    domain: str,
) -> Message | None:
    subscriber = row.subscriber
    if subscriber is None or not _reachable(row) or version is None:
        return None
    prepared = _email_template(version, from_email)
    token = links.sign(subscriber.pk, subscriber.token_key)
    preferences, unsubscribe, list_headers = links.for_token(token)
    headers = {"X-Delivery-ID": str(row.pk), **list_headers}
    message_id = f"delivery-{row.pk}@{domain}"
    raw = prepared.build(
        to=subscriber.email,
        message_id=message_id,
        date=date,
        name=subscriber.name,
        preferences_url=preferences,
        unsubscribe_url=unsubscribe,
        headers=headers,
        with_html=subscriber.email_format == Subscriber.EmailFormat.HTML,
    )
    # Email backends send ``raw``; the body is not repeated as text and html strings.
    return Message(
        delivery_id=row.pk,
        to=subscriber.email,
        subject=prepared.template.subject,
        headers={"Message-ID": f"<{message_id}>", **headers},
        raw=raw,
    )


def build_messages(
    channel: Channel, rows: Sequence[ClaimedRow], now: datetime
) -> tuple[list[Message], list[ClaimedRow], list[Outcome]]:
    """Render each claimed row; return (messages to send, rows to cancel, render failures).

    A row is cancelled when its recipient became unreachable after fan-out: unsubscribed,
    bounced, complained, erased or suppressed (site mail: bounced or complained only). A row
    that cannot be rendered fails permanently: rendering again gives the same result.
    """
    from_email = str(channel.config.get("from_email") or settings.DEFAULT_FROM_EMAIL)
    date = format_datetime(now)
    site_mail = [row for row in rows if row.kind == Delivery.Kind.TRANSACTIONAL]
    blocked_hashes: set[str] = set()
    if site_mail:
        hashes = {email_hash(row.recipient) for row in site_mail}
        blocked_hashes = set(
            Suppression.objects.filter(
                email_hash__in=hashes, reason__in=SITE_MAIL_SUPPRESSED
            ).values_list("email_hash", flat=True)
        )
    versions = load_versions(rows)
    links = SubscriberLinks.build()
    domain = message_id_domain()
    messages: list[Message] = []
    cancelled: list[ClaimedRow] = []
    failures: list[Outcome] = []
    for row in rows:
        version = versions.get(row.version_id or 0)
        message: Message | None = None
        try:
            if row.kind == Delivery.Kind.SUBSCRIBER:
                message = _subscriber_message(row, version, from_email, date, links, domain)
            elif row.kind == Delivery.Kind.BROADCAST and version is not None:
                payload = _broadcast_payload(version, channel.kind)
                message = Message(delivery_id=row.pk, payload=payload)
            elif (
                row.kind == Delivery.Kind.TRANSACTIONAL
                and row.raw_message is not None
                and email_hash(row.recipient) not in blocked_hashes
            ):
                message = _site_message(row)
            elif row.kind == Delivery.Kind.DIGEST:
                message = _digest_message(row)
        except Exception as error:  # one broken row must not hold the batch
            logger.exception("Delivery %s cannot be rendered", row.pk)
            failures.append(
                Outcome(row.pk, OutcomeStatus.PERMANENT, error=f"Rendering failed: {error!r}")
            )
            continue
        if message is None:
            cancelled.append(row)
        else:
            messages.append(message)
    return messages, cancelled, failures


def _site_message(row: ClaimedRow) -> Message:
    return Message(delivery_id=row.pk, to=row.recipient, raw=bytes(row.raw_message or b""))


def _digest_message(row: ClaimedRow) -> Message | None:
    """A digest (channels.digests) keeps its complete bytes, built when it was written; it goes
    only to a subscriber still reachable now (None: cancel it)."""
    if not _reachable(row) or row.raw_message is None:
        return None
    return Message(delivery_id=row.pk, to=row.recipient, raw=bytes(row.raw_message))


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
        if row.attempts >= settings.DELIVERY_MAX_ATTEMPTS:
            row.status = Delivery.Status.DEAD
        else:
            row.status = Delivery.Status.QUEUED
            delay = backoff_seconds(row.attempts, outcome.retry_after)
            row.next_attempt_at = now + timedelta(seconds=delay)


RECORDED_FIELDS = [
    "status",
    "attempts",
    "next_attempt_at",
    "lease_expires_at",
    "last_error",
    "provider_message_id",
    "sent_at",
    "uncertain_at",
    "updated_at",
]


def record_outcomes(
    rows: Sequence[ClaimedRow],
    outcomes: Sequence[Outcome],
    lease: datetime,
    now: datetime,
    *,
    sent_at: Mapping[int, datetime] | None = None,
    policies: Mapping[int, str] | None = None,
    retry_now: bool = False,
) -> dict[str, int]:
    """Write every outcome of a batch in one UPDATE. Returns counts, by final status, of the
    rows written.

    Only rows still held under this claim's lease are written, so a worker that somehow
    outlived its lease can neither overwrite what the sweeper or another worker recorded nor
    count it twice. ``sent_at`` gives the acceptance time of rows recovered from the sent
    journal; the journal entries of every row written are deleted (decision 0039).
    ``policies`` maps channel ids to their uncertain policy (resend when missing);
    ``retry_now`` re-queues rows for now rather than after a backoff (crash recovery).
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
    counts: dict[str, int] = {}
    for row in changed:
        if row.pk in written:
            counts[row.status] = counts.get(row.status, 0) + 1
    journal.forget(row.pk for row in changed if row.pk in written)
    return counts


def _record_postgresql(rows: Sequence[ClaimedRow], lease: datetime, now: datetime) -> set[int]:
    # One UPDATE ... FROM unnest(arrays): one parameter per column, not per column and row.
    # Django's bulk_update builds a CASE per field and row (about 2 ms of Python per row), and
    # a VALUES list of 3,500 placeholders costs psycopg a scan of the query text per batch.
    table = Delivery._meta.db_table
    sql = f"""
        UPDATE {table} AS d
        SET status = v.status, attempts = v.attempts, next_attempt_at = v.next_attempt_at,
            last_error = v.last_error, provider_message_id = v.provider_message_id,
            sent_at = v.sent_at, uncertain_at = v.uncertain_at, lease_expires_at = NULL,
            updated_at = %s
        FROM unnest(%s::bigint[], %s::varchar[], %s::integer[], %s::timestamptz[],
                    %s::varchar[], %s::varchar[], %s::timestamptz[], %s::timestamptz[])
            AS v(id, status, attempts, next_attempt_at, last_error, provider_message_id, sent_at,
                 uncertain_at)
        WHERE d.id = v.id AND d.status = %s AND d.lease_expires_at = %s
        RETURNING d.id
    """  # noqa: S608 (table name from model metadata, values are parameters)
    columns: list[list[Any]] = [
        [row.pk for row in rows],
        [row.status for row in rows],
        [row.attempts for row in rows],
        [row.next_attempt_at for row in rows],
        [row.last_error for row in rows],
        [row.provider_message_id for row in rows],
        [row.sent_at for row in rows],
        [row.uncertain_at for row in rows],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, *columns, Delivery.Status.SENDING, lease])
        return {int(pk) for (pk,) in cursor.fetchall()}


def _complete(messages: Sequence[Message], outcomes: Sequence[Outcome]) -> list[Outcome]:
    # A backend that forgot a message must not leave it sending: it is retried.
    seen = {outcome.delivery_id for outcome in outcomes}
    missing = [
        Outcome(m.delivery_id, OutcomeStatus.TRANSIENT, error="The backend returned no outcome.")
        for m in messages
        if m.delivery_id not in seen
    ]
    return [*outcomes, *missing]


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
    gate = _enter_circuit(channel, now)
    if gate == "blocked":
        report.blocked = True
        return report
    trial = gate == "trial"
    limit = channel.batch_size
    if trial:
        limit = min(limit, settings.DELIVERY_CIRCUIT_TRIAL_SIZE)
    rate = channel.rate_limit_per_second
    if rate:
        limit = min(limit, max(1, int(rate * settings.DELIVERY_RATE_BATCH_SECONDS)))
    rows, lease = claim(channel, limit, now)
    report.claimed = len(rows)
    if not rows:
        if trial:
            # Nothing to test the provider with: let the next batch try again.
            Channel.objects.filter(pk=channel.pk).update(
                circuit_state=Channel.CircuitState.OPEN, circuit_opened_at=None
            )
        return report
    accepted, unknown = _accepted_before(rows)
    report.recovered = len(accepted)
    report.held_back = len(unknown)
    messages, cancelled, failures = build_messages(
        channel, [row for row in rows if row.pk not in accepted and row.pk not in unknown], now
    )
    failures.extend(
        Outcome(pk, OutcomeStatus.TRANSIENT, error="The sent journal cannot be read: held back.")
        for pk in unknown
    )
    if cancelled:
        report.cancelled = Delivery.objects.filter(
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
        )
        if outcomes:
            _record_channel_health(channel.pk, outcomes, trial=trial, now=done)
        if any(outcome.disable_channel for outcome in outcomes):
            Channel.objects.filter(pk=channel.pk).update(is_enabled=False)
            logger.warning("Channel %s disabled: the endpoint reported it is gone", channel.pk)
    dispatch_ids = {row.dispatch_id for row in rows if row.dispatch_id is not None}
    if dispatch_ids:
        finish_dispatches(dispatch_ids)
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


def send_batches(channel_id: int) -> int:
    """Run send_batch while its batches come back full, for up to DELIVERY_TASK_SECONDS, then
    hand the rest of the chain to a new task. One task sending several batches saves the
    queue's round trip (enqueue, poll, unpickle) between them. Returns the rows claimed.
    """
    deadline = time.monotonic() + settings.DELIVERY_TASK_SECONDS
    claimed = 0
    while True:
        report = send_batch(channel_id, chain=False)
        claimed += report.claimed
        if not report.continued:
            return claimed
        if time.monotonic() >= deadline:
            async_task(SEND_BATCH_TASK, channel_id)
            return claimed


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


def _send(channel: Channel, messages: Sequence[Message], lease: datetime) -> list[Outcome]:
    """Call the backend; a crash or a broken configuration is a transient outcome for all.

    With the sent journal on, each message is journaled under ``lease`` as in flight before it
    is handed over and as accepted or refused once answered, before the next one (decisions
    0039 and 0068); a backend crash keeps the outcomes given before it, and a journal that
    fails stops the batch before the next hand-over.
    """
    try:
        backend = TimedBackend(get_backend(channel))
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
    return _complete(messages, outcomes)


# --- Sweeper ------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    #: Expired rows the sent journal showed were accepted: recorded as sent, not re-queued.
    recovered: int = 0
    #: Expired rows the journal showed were handed over with no answer (decision 0068).
    uncertain: int = 0
    #: Expired rows the journal showed were refused: their outcome applied.
    refused: int = 0
    requeued: int = 0
    dead: int = 0
    finished: int = 0
    replanned: int = 0
    enqueued: int = 0


def sweep() -> SweepReport:
    """Repair what crashes and lost tasks left behind; run by a django-q2 schedule.

    - deliveries whose lease expired (their worker died) are sorted by the sent journal
      (``recover_expired_leases``): accepted ones are recorded as sent, refused ones get their
      outcome, uncertain ones follow their channel's policy, the never started are re-queued
      (dead on their last attempt);
    - a half-open circuit whose trial batch never reported goes back to open;
    - dispatches still planning long after creation are planned again (their task was lost);
    - channels with due deliveries nobody claimed for DELIVERY_SWEEP_STALE_SECONDS get batches;
    - dispatches whose deliveries are all settled are marked done.
    """
    now = timezone.now()
    report = SweepReport()
    recover_expired_leases(now, report)
    lease = timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    Channel.objects.filter(
        circuit_state=Channel.CircuitState.HALF_OPEN, circuit_opened_at__lt=now - lease
    ).update(circuit_state=Channel.CircuitState.OPEN, circuit_opened_at=None)
    stale = now - timedelta(seconds=settings.DELIVERY_SWEEP_STALE_SECONDS)
    for dispatch_id in Dispatch.objects.filter(
        status=Dispatch.Status.PLANNING, created_at__lt=stale
    ).values_list("pk", flat=True):
        async_task(PLAN_DISPATCH_TASK, dispatch_id)
        report.replanned += 1
    report.enqueued = enqueue_due_batches(stale_before=stale)
    cooled = now - timedelta(seconds=settings.DELIVERY_CIRCUIT_COOLDOWN_SECONDS)
    for channel_id in (
        Channel.objects.filter(is_enabled=True, circuit_state=Channel.CircuitState.OPEN)
        .filter(Q(circuit_opened_at__isnull=True) | Q(circuit_opened_at__lte=cooled))
        .filter(Exists(Delivery.objects.due(now).filter(channel_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    ):
        async_task(SEND_BATCH_TASK, channel_id)
        report.enqueued += 1
    report.finished = finish_dispatches()
    return report


#: Expired rows the sweeper sorts per run; any beyond it wait for the next run.
SWEEP_JOURNAL_LIMIT = 10_000
WORKER_DIED = "The worker stopped while sending (lease expired)"


def recover_expired_leases(now: datetime, report: SweepReport | None = None) -> int:
    """Sort the rows whose lease expired by what the sent journal says (decision 0068).

    One read of the rows, one bulk read of the journal, then one conditional UPDATE per claim
    (lease): a row is written only while it is still ``sending`` under the lease read, so a
    worker that outlived its lease and records later changes nothing. Per row:

    - accepted (by any claim): sent, with the provider's id and acceptance time;
    - refused under this claim: that outcome (failed, or queued for a retry);
    - in flight under this claim, or any row when the journal is off: uncertain, resolved by
      the channel's policy (queued again at once with ``resend``, ``uncertain`` with ``skip``);
    - no entry of this claim (never handed over): queued again at once, dead on its last
      attempt.

    When the journal cannot be read, nothing is changed: the rows wait for the next sweep.
    Returns how many rows were recorded as sent.
    """
    report = report if report is not None else SweepReport()
    rows = claimed_rows(
        Delivery.objects.lease_expired(now)
        .annotate(is_suppressed=Value(False), version_id=F("dispatch__version_id"))
        .order_by("pk")[:SWEEP_JOURNAL_LIMIT]
    )
    if not rows:
        return 0
    enabled = journal.is_enabled()
    try:
        entries = journal.read((row.pk, row.created_at) for row in rows) if enabled else {}
    except journal.JournalReadError:
        logger.warning("Sweeper: %s expired leases wait: the journal cannot be read", len(rows))
        return 0
    claims: dict[datetime, list[tuple[ClaimedRow, Outcome]]] = {}
    accepted_at: dict[int, datetime] = {}
    for row in rows:
        outcome = _recovered_outcome(row, entries.get(row.pk), journal_on=enabled)
        if outcome.status == OutcomeStatus.SENT:
            accepted_at[row.pk] = entries[row.pk].at
        if row.lease_expires_at is not None:
            claims.setdefault(row.lease_expires_at, []).append((row, outcome))
    policies = {
        pk: Channel(pk=pk, kind=kind, uncertain_policy=policy).effective_uncertain_policy
        for pk, kind, policy in Channel.objects.filter(
            pk__in={row.channel_id for row in rows}
        ).values_list("pk", "kind", "uncertain_policy")
    }
    for lease, held in claims.items():
        counts = record_outcomes(
            [row for row, _ in held],
            [outcome for _, outcome in held],
            lease,
            now,
            sent_at=accepted_at,
            policies=policies,
            retry_now=True,
        )
        report.recovered += counts.get(Delivery.Status.SENT, 0)
        report.dead += counts.get(Delivery.Status.DEAD, 0)
        report.refused += counts.get(Delivery.Status.FAILED, 0)
        # Uncertain rows are counted whether their policy re-queued or skipped them.
        report.uncertain += sum(1 for _, o in held if o.status == OutcomeStatus.UNCERTAIN)
        report.requeued += counts.get(Delivery.Status.QUEUED, 0)
    if report.recovered or report.uncertain or report.requeued or report.dead or report.refused:
        logger.warning(
            "Sweeper: expired leases: %s found sent in the journal, %s uncertain, %s refused, "
            "%s re-queued, %s dead",
            report.recovered,
            report.uncertain,
            report.refused,
            report.requeued,
            report.dead,
        )
    return report.recovered


def _recovered_outcome(
    row: ClaimedRow, entry: journal.Entry | None, *, journal_on: bool
) -> Outcome:
    """What the journal says became of an expired row (see recover_expired_leases)."""
    if entry is not None and entry.state == journal.State.ACCEPTED:
        return Outcome(row.pk, OutcomeStatus.SENT, provider_message_id=entry.detail)
    this_claim = (
        entry is not None
        and row.lease_expires_at is not None
        and entry.lease == journal.lease_token(row.lease_expires_at)
    )
    if entry is not None and this_claim and entry.state == journal.State.REFUSED:
        status, error = entry.refusal()
        try:
            refused = OutcomeStatus(status)
        except ValueError:
            refused = OutcomeStatus.TRANSIENT
        return Outcome(row.pk, refused, error=error)
    if (entry is not None and this_claim) or not journal_on:
        return Outcome(
            row.pk,
            OutcomeStatus.UNCERTAIN,
            error=f"{WORKER_DIED} after handing the message over, before the answer.",
        )
    return Outcome(row.pk, OutcomeStatus.TRANSIENT, error=f"{WORKER_DIED} before sending it.")


def requeue_deliveries(delivery_ids: Iterable[int]) -> int:
    """Put failed, dead or uncertain (skipped) deliveries back in the queue with fresh
    attempts (admin action, API, ``retry_deliveries``)."""
    now = timezone.now()
    ids = list(delivery_ids)
    count = Delivery.objects.filter(pk__in=ids, status__in=Delivery.REQUEUEABLE).update(
        status=Delivery.Status.QUEUED,
        attempts=0,
        next_attempt_at=now,
        last_error="",
        updated_at=now,
    )
    if count:
        channel_ids = set(
            Delivery.objects.filter(pk__in=ids).values_list("channel_id", flat=True).distinct()
        )
        dispatch_ids = set(
            Delivery.objects.filter(pk__in=ids, dispatch__isnull=False)
            .values_list("dispatch_id", flat=True)
            .distinct()
        )
        Dispatch.objects.filter(pk__in=dispatch_ids, status=Dispatch.Status.DONE).update(
            status=Dispatch.Status.SENDING, finished_at=None
        )
        for channel_id in channel_ids:
            enqueue(SEND_BATCH_TASK, channel_id)
    return count


REQUEUE_CHUNK = 10_000


def requeue_matching(
    *, statuses: Sequence[str], channel_id: int | None = None, dispatch_id: int | None = None
) -> int:
    """Re-queue every delivery in ``statuses`` (failed, dead and/or uncertain only) of a channel
    and/or a dispatch, through requeue_deliveries, in chunks that stay under the database's
    parameter limit. Used by ``retry_deliveries`` and the dispatch admin. Returns how many were
    re-queued.
    """
    allowed = [s for s in statuses if s in Delivery.REQUEUEABLE]
    rows = Delivery.objects.filter(status__in=allowed)
    if channel_id is not None:
        rows = rows.filter(channel_id=channel_id)
    if dispatch_id is not None:
        rows = rows.filter(dispatch_id=dispatch_id)
    ids = list(rows.order_by("pk").values_list("pk", flat=True))
    count = 0
    with transaction.atomic():
        for start in range(0, len(ids), REQUEUE_CHUNK):
            count += requeue_deliveries(ids[start : start + REQUEUE_CHUNK])
    logger.info(
        "Re-queued %s deliveries (statuses %s, channel %s, dispatch %s)",
        count,
        ",".join(allowed),
        channel_id,
        dispatch_id,
    )
    return count


def forget_recipient(sender: object, *, email: str, **kwargs: object) -> int:
    """Receiver of subscribers' ``subscriber_erased``: scrub the site mail kept for ``email``.

    Transactional deliveries keep the address and the whole message; on erasure both go. Rows not
    yet sent are cancelled first. Returns the number of rows scrubbed.
    """
    rows = Delivery.objects.filter(kind=Delivery.Kind.TRANSACTIONAL, recipient__iexact=email)
    rows.exclude(status__in=Delivery.SETTLED).update(
        status=Delivery.Status.CANCELLED, last_error="recipient erased", lease_expires_at=None
    )
    return rows.update(recipient="", raw_message=None)
