"""Work handed to django-q2: task names, hints enqueued after commit, and the wake-up of
channels whose deliveries have become due (decision 0068).

Tasks are hints, not the truth (decision 0030): every function here may enqueue a task that
finds nothing to do.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django_q.tasks import async_task

from channels.event_models import EVENT_WEBHOOK_KIND
from channels.models import Channel, Delivery

logger = logging.getLogger(__name__)


SEND_BATCH_TASK = "channels.tasks.send_batch"

PLAN_DISPATCH_TASK = "channels.tasks.plan_dispatch"


def enqueue(func: str, *args: int) -> None:
    """Hand a task to django-q2 once the current transaction commits (now if there is none)."""
    transaction.on_commit(lambda: async_task(func, *args))


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
    channels = Channel.objects.filter(is_enabled=True)
    if channel_id is not None:
        channels = channels.filter(pk=channel_id)
    concurrency = settings.DELIVERY_CHANNEL_CONCURRENCY
    enqueued = 0
    for channel in channels.only("pk", "batch_size"):
        due = Delivery.objects.due(now).filter(channel_id=channel.pk)
        if dispatch_id is not None:
            due = due.filter(dispatch_id=dispatch_id)
        if stale_before is not None and not _oldest_due_before(channel.pk, stale_before):
            continue
        batch_size = max(channel.batch_size, 1)
        count = due_rows(due, batch_size * concurrency)
        for _ in range(min(math.ceil(count / batch_size), concurrency)):
            async_task(SEND_BATCH_TASK, channel.pk)
            enqueued += 1
    return enqueued


def due_rows(due: QuerySet[Delivery], limit: int) -> int:
    """How many rows of ``due`` (due deliveries of one channel) there are, up to ``limit``:
    enough to know how many batches to start, never a count of the whole queue (at most
    ``limit`` entries of ``delivery_due`` read, in its order)."""
    return due.order_by(*Delivery.CLAIM_ORDER).values("pk")[:limit].count()


def _oldest_due_before(channel_id: int, moment: datetime) -> bool:
    """Whether a queued row of the channel has been due since before ``moment``: per
    priority, the first entry of ``delivery_due``, asked for in the index's order so that the
    planner reads the index, not the ledger, also for a channel with nothing queued."""
    for priority in Delivery.PRIORITIES:
        oldest = (
            Delivery.objects.filter(
                channel_id=channel_id, status=Delivery.Status.QUEUED, priority=priority
            )
            .order_by("next_attempt_at", "pk")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
        if oldest is not None and oldest <= moment:
            return True
    return False


def wake_due_channels(since: datetime, until: datetime) -> int:
    """Enqueue one batch for each enabled channel with queued rows whose next attempt time
    falls in (``since``, ``until``]: retries and rate-limited rows come back when they are
    due, not when the sweeper next notices them. Returns the number of tasks enqueued.

    One query whatever the queue's size: per channel and priority, an index range scan of
    ``delivery_due`` (channel, priority, next_attempt_at), never a scan of the ledger. The
    worker's broker calls it every DELIVERY_WAKE_SECONDS (channels.broker).
    """
    becoming_due = {
        f"due_{priority}": Subquery(
            Delivery.objects.filter(
                channel_id=OuterRef("pk"),
                status=Delivery.Status.QUEUED,
                priority=priority,
                next_attempt_at__gt=since,
                next_attempt_at__lte=until,
            )
            .order_by("next_attempt_at", "pk")
            .values("pk")[:1]
        )
        for priority in Delivery.PRIORITIES
    }
    channel_ids = list(
        Channel.objects.filter(is_enabled=True)
        .annotate(**becoming_due)
        .filter(Q(*(Q(**{f"{name}__isnull": False}) for name in becoming_due), _connector=Q.OR))
        .values_list("pk", flat=True)
    )
    for channel_id in channel_ids:
        async_task(SEND_BATCH_TASK, channel_id)
    return len(channel_ids)


def messages_waiting(now: datetime) -> bool:
    """Whether a message (not an event to an endpoint) is due on an enabled channel that can
    send it: per channel and priority, the first entry of ``delivery_due``, never a scan of
    the ledger. A channel whose circuit is open sends nothing until its cool-down ends, so
    its queue does not hold events back (decision 0084)."""
    channel_ids = (
        Channel.objects.filter(is_enabled=True)
        .exclude(kind=EVENT_WEBHOOK_KIND)
        .exclude(circuit_state=Channel.CircuitState.OPEN)
        .values_list("pk", flat=True)
    )
    return any(_oldest_due_before(channel_id, now) for channel_id in channel_ids)
