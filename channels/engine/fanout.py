"""Fan-out: the deliveries of a dispatch, created in SQL, once (docs/delivery.md "The flow").

One INSERT ... SELECT ... ON CONFLICT DO NOTHING per kind of recipient; running it again
creates nothing. Also the end of a dispatch: done once every delivery is settled.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.apps import apps
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from channels.backends.base import (
    BackendError,
    get_backend_class,
)
from channels.engine.queue import enqueue_due_batches
from channels.models import Channel, Delivery
from publishing.models import Dispatch
from subscribers.models import Subscriber, Subscription

logger = logging.getLogger(__name__)


def is_broadcast_kind(kind: str) -> bool:
    try:
        return get_backend_class(kind).is_broadcast
    except BackendError:
        return not kind.startswith("email")


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
    """One INSERT ... SELECT: a delivery for each reachable subscriber with an immediate,
    unpaused subscription to one of ``topic_ids``. The audience is compiled from the
    subscribers' own querysets (``reachable``, ``receiving_immediately``): one definition of
    who may receive mail, in the database, with no row through Python."""
    subscriptions = Subscription.objects.receiving_immediately(timezone.localdate(now)).filter(
        subscriber_id=OuterRef("pk"), topic_id__in=list(topic_ids)
    )
    audience = Subscriber.objects.reachable().filter(Exists(subscriptions)).order_by()
    select, select_params = audience.values_list("pk").query.sql_with_params()
    delivery = Delivery._meta.db_table
    # "WHERE true": SQLite reads an upsert's ON after a bare FROM as a join constraint. The
    # audience is a CTE with a column list: SQLite has no column list on a subquery's alias. The
    # statement starts with INSERT, or Python's sqlite3 reports no rowcount.
    sql = f"""
        INSERT INTO {delivery} (kind, dispatch_id, channel_id, subscriber_id, recipient, priority,
            status, attempts, next_attempt_at, last_error, provider_message_id, created_at,
            updated_at)
        WITH audience (id) AS ({select})
        SELECT %s, %s, %s, audience.id, '', %s, %s, 0, %s, '', '', %s, %s
        FROM audience
        WHERE true
        ON CONFLICT DO NOTHING
    """  # noqa: S608 (table name from model metadata, the audience compiled by the ORM)
    params: list[Any] = [
        *select_params,
        Delivery.Kind.SUBSCRIBER,
        dispatch_id,
        channel_id,
        Delivery.PRIORITY_BULK,
        Delivery.Status.QUEUED,
        now,
        now,
        now,
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
        email_channel = Channel.objects.default_email()
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


def finish_dispatches(dispatch_ids: Iterable[int] | None = None) -> int:
    """Mark done the sending dispatches whose deliveries are all settled. Returns how many."""
    unsettled = Delivery.objects.filter(dispatch_id=OuterRef("pk")).unsettled()
    dispatches = Dispatch.objects.filter(status=Dispatch.Status.SENDING)
    if dispatch_ids is not None:
        dispatches = dispatches.filter(pk__in=list(dispatch_ids))
    return dispatches.exclude(Exists(unsettled)).update(
        status=Dispatch.Status.DONE, finished_at=timezone.now()
    )
