"""Claims: a batch takes its due rows with SELECT ... FOR UPDATE SKIP LOCKED under a lease, as
plain values (decisions 0032 and 0065)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, OuterRef

from channels.models import Channel, Delivery, DeliveryQuerySet
from subscribers.models import Subscriber

logger = logging.getLogger(__name__)


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


def claimed_rows(queryset: DeliveryQuerySet) -> list[ClaimedRow]:
    """The rows of ``queryset`` (annotated with ``version_id``, ``is_reachable`` and
    ``dispatch_status``) as ClaimedRow values, with their subscriber, in the queryset's order."""
    width = len(ROW_COLUMNS)
    rows = []
    for values in queryset.values_list(
        *ROW_COLUMNS,
        *SUBSCRIBER_COLUMNS,
        "version_id",
        "is_reachable",
        "dispatch_status",
        "language",
    ):
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


def claimable(channel_id: int, now: datetime) -> DeliveryQuerySet:
    """The claim's query: the channel's due rows in claim order, locked as they are read,
    skipping rows another worker holds. The order is the ``delivery_due`` index's own
    (channel, priority, next_attempt_at, id), so a claim of 500 reads about 500 index
    entries whatever the queue's length: no sort (tests/channels/test_query_plans.py)."""
    reachable = Subscriber.objects.reachable().filter(pk=OuterRef("subscriber_id"))
    return (
        Delivery.objects.due(now)
        .filter(channel_id=channel_id)
        .order_by(*Delivery.CLAIM_ORDER)
        .annotate(
            is_reachable=Exists(reachable),
            version_id=F("dispatch__version_id"),
            dispatch_status=dispatch_status(),
        )
        .select_for_update(skip_locked=True, of=("self",))
    )


def claim(channel: Channel, limit: int, now: datetime) -> tuple[list[ClaimedRow], datetime]:
    """Claim up to ``limit`` due deliveries of the channel for this worker.

    SELECT ... FOR UPDATE SKIP LOCKED: concurrent workers each get different rows, and a row
    becomes ``sending`` with a lease and one more attempt before the transaction commits. The
    rows come back with what sending needs (subscriber, whether they are still reachable,
    version), in one query.
    Returns the claimed rows and the lease, which also identifies this claim.
    """
    lease = now + timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    with transaction.atomic():
        rows = claimed_rows(claimable(channel.pk, now)[:limit])
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
