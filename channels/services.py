"""The engine's writes that the admin, the API and the commands call: site mail into the ledger,
re-queueing, erasure. The machinery itself is channels.engine (docs/architecture.md)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.core.mail import get_connection
from django.core.mail.message import EmailMessage
from django.db import transaction
from django.utils import timezone

from channels.backends.email_common import crlf_bytes
from channels.engine.queue import SEND_BATCH_TASK, enqueue
from channels.models import Channel, Delivery
from config.mail import site_message_id
from publishing.models import Dispatch

logger = logging.getLogger(__name__)


def queue_site_mail(email_messages: Sequence[EmailMessage]) -> int:
    """Record each message, once per recipient, as a transactional delivery of the default email
    channel, and enqueue its sending after commit. Returns the number of messages accepted.

    With no enabled email channel, LEDGER_FALLBACK_EMAIL_BACKEND sends them instead.
    """
    channel = Channel.objects.default_email()
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
        if not any(name.lower() == "message-id" for name in message.extra_headers):
            # Django would use DNS_NAME (often ``localhost``): the site's domain, as bulk mail.
            message.extra_headers["Message-ID"] = site_message_id()
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
