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
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone
from django_q.tasks import async_task

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
