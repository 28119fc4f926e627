"""The events relay (decision 0084): events recorded in the transactions of their changes
become queued deliveries of the endpoints that want them, after commit, in bulk.

A large send records an event per message in every batch; writing each event's delivery in
the batch's transaction too cost the send about an eighth of its rate (bench/delivery.py
--only events). The relay writes them outside the send, many at a time, with one
INSERT ... SELECT per endpoint, and the engine then sends them like any delivery.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Min, OuterRef, Subquery
from django.utils import timezone

from channels.engine.queue import SEND_BATCH_TASK, enqueue, messages_waiting
from channels.models import Delivery, EventAttempt, WebhookEndpoint
from events import recorder
from events.models import Event

logger = logging.getLogger(__name__)

#: The relay task, enqueued after the commit of recorded events at most once per
#: RELAY_HINT_SECONDS and process: a large send records events in every batch, and one relay
#: takes everything recorded since the last. The workers' pollers relay every
#: DELIVERY_WAKE_SECONDS (channels.broker) and the sweeper every sweep, so a hint skipped or
#: lost delays events by about a second at most.
RELAY_TASK = "channels.tasks.relay_events"
RELAY_HINT_SECONDS = 1.0
_relay_hinted = [-RELAY_HINT_SECONDS]


def hint() -> None:
    """Enqueue a relay after the current transaction commits, unless this process did
    within RELAY_HINT_SECONDS (tasks running inline are never skipped)."""
    now = time.monotonic()
    inline = bool(settings.Q_CLUSTER.get("sync"))  # tasks run at once: nothing to save
    if not inline and now - _relay_hinted[0] < RELAY_HINT_SECONDS:
        return
    _relay_hinted[0] = now
    enqueue(RELAY_TASK)


def relay_events() -> int:
    """Turn the events recorded since the last relay into queued deliveries, one per event
    and enabled endpoint that wants it, and enqueue those endpoints' batches. Returns how many
    deliveries were created.

    Each endpoint keeps its position (``relayed_until``): a relay takes the events between it
    and the horizon (``events.recorder.horizon``: every event below is committed or gone),
    and those of its own transaction, then moves the position to the horizon. Nothing is
    skipped, whatever order the transactions commit in, and nothing doubled: the unique
    (event, endpoint) constraint drops a delivery that already exists (a replay's, or one
    relayed before its transaction ended). Endpoints are locked with SKIP LOCKED, so
    concurrent relays share them; a disabled endpoint's position moves on without
    deliveries, so enabling it again sends nothing it missed (decision 0084).
    """
    floor = WebhookEndpoint.objects.aggregate(floor=Min("relayed_until"))["floor"]
    if floor is None or not _pending(floor):
        return 0
    now = timezone.now()
    if _waiting_for_messages(floor, now):
        return 0
    created: dict[int, int] = {}
    with transaction.atomic():
        endpoints = list(
            WebhookEndpoint.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("channel")
            .order_by("pk")
        )
        until = recorder.horizon()
        for endpoint in endpoints:
            if endpoint.channel.is_enabled:
                created[endpoint.channel_id] = _relay(endpoint, until, now)
            if until > endpoint.relayed_until:
                WebhookEndpoint.objects.filter(pk=endpoint.pk).update(relayed_until=until)
        for channel_id, count in sorted(created.items()):
            if count:
                enqueue(SEND_BATCH_TASK, channel_id)
    total = sum(created.values())
    if total:
        logger.info("events: %s deliveries relayed to %s endpoints", total, len(created))
    return total


def _waiting_for_messages(floor: int, now: datetime) -> bool:
    """Whether the events from ``floor`` on wait: messages are due and the oldest of the
    events is younger than EVENT_RELAY_MAX_WAIT_SECONDS."""
    wait = settings.EVENT_RELAY_MAX_WAIT_SECONDS
    if wait <= 0 or not messages_waiting(now):
        return False
    position = "pk" if connection.vendor != "postgresql" else "transaction_id"
    oldest = (
        Event.objects.filter(**{f"{position}__gte": floor})
        .order_by(position)
        .values_list("occurred_at", flat=True)
        .first()
    )
    return oldest is not None and oldest > now - timedelta(seconds=wait)


#: This transaction's id, or NULL when it has none yet (PostgreSQL).
OWN_TRANSACTION = "pg_current_xact_id_if_assigned()::text::bigint"


def _pending(floor: int) -> bool:
    """Whether any event may wait for a relay: one at or after ``floor`` (the lowest
    endpoint position), including those of this transaction."""
    if connection.vendor != "postgresql":
        return Event.objects.filter(pk__gte=floor).exists()
    table = Event._meta.db_table
    sql = f"""
        SELECT EXISTS (SELECT 1 FROM {table} WHERE transaction_id >= %s)
            OR EXISTS (SELECT 1 FROM {table} WHERE transaction_id = {OWN_TRANSACTION})
    """  # noqa: S608 (the table name from model metadata, the value a parameter)
    with connection.cursor() as cursor:
        cursor.execute(sql, [floor])
        (pending,) = cursor.fetchone()
    return bool(pending)


def _relay(endpoint: WebhookEndpoint, until: int, now: datetime) -> int:
    """Queue a delivery to ``endpoint`` of each event it wants between its position and
    ``until`` (and of this transaction). On PostgreSQL one INSERT ... SELECT: the events
    never leave the database; elsewhere bulk_create. Returns how many were created."""
    types = list(endpoint.event_types or [])
    if not types:
        return 0
    if connection.vendor != "postgresql":
        events = Event.objects.filter(
            pk__gte=endpoint.relayed_until, pk__lt=until, type__in=types
        ).order_by("pk")
        if not endpoint.include_machine_events:
            events = events.filter(is_machine=False)
        wanted = list(events.values_list("pk", flat=True))
        queued = set(
            Delivery.objects.filter(
                channel_id=endpoint.channel_id, event_id__in=wanted
            ).values_list("event_id", flat=True)
        )
        rows = Delivery.objects.bulk_create(
            Delivery(
                kind=Delivery.Kind.EVENT,
                event_id=pk,
                channel_id=endpoint.channel_id,
                next_attempt_at=now,
            )
            for pk in wanted
            if pk not in queued
        )
        return len(rows)
    sql = f"""
        INSERT INTO {Delivery._meta.db_table} (kind, event_id, channel_id, recipient, priority,
            status, attempts, next_attempt_at, last_error, provider_message_id, created_at,
            updated_at)
        SELECT %s, e.id, %s, '', %s, %s, 0, %s, '', '', %s, %s
        FROM {Event._meta.db_table} e
        WHERE ((e.transaction_id >= %s AND e.transaction_id < %s)
               OR e.transaction_id = {OWN_TRANSACTION})
          AND e.type = ANY(%s) AND (%s OR NOT e.is_machine)
        ORDER BY e.id
        ON CONFLICT (event_id, channel_id) WHERE kind = %s DO NOTHING
    """  # noqa: S608 (table names from model metadata, values are parameters)
    params: list[Any] = [
        Delivery.Kind.EVENT,
        endpoint.channel_id,
        Delivery.PRIORITY_BULK,
        Delivery.Status.QUEUED,
        now,
        now,
        now,
        endpoint.relayed_until,
        until,
        types,
        endpoint.include_machine_events,
        Delivery.Kind.EVENT,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return int(max(cursor.rowcount, 0))


#: Events the sweeper deletes per run at most (the oldest first), with their deliveries.
PRUNE_CHUNK = 5_000


def prune_events(now: datetime | None = None) -> int:
    """Delete the events older than EVENT_RETENTION_DAYS (0: keep every event), the oldest
    first and at most PRUNE_CHUNK per call, with their deliveries to endpoints and those
    deliveries' attempts. Returns how many events were deleted.

    An event still on its way is kept: one with a delivery queued, held or sending (a retry
    of the schedule, which ends long before the retention), or not yet relayed to every
    endpoint (above the lowest position). Reads at most PRUNE_CHUNK entries of the events'
    primary key, never the whole table: the oldest events come first in id order.
    """
    days = settings.EVENT_RETENTION_DAYS
    if days <= 0:
        return 0
    now = now or timezone.now()
    oldest = Event.objects.order_by("pk").values("pk")[:PRUNE_CHUNK]
    old = Event.objects.filter(pk__in=Subquery(oldest), occurred_at__lt=now - timedelta(days=days))
    floor = WebhookEndpoint.objects.aggregate(floor=Min("relayed_until"))["floor"]
    if floor is not None:
        position = "transaction_id" if connection.vendor == "postgresql" else "pk"
        old = old.filter(**{f"{position}__lt": floor})
    on_its_way = Delivery.objects.filter(event_id=OuterRef("pk")).unsettled()
    ids = list(old.exclude(Exists(on_its_way)).order_by().values_list("pk", flat=True))
    if not ids:
        return 0
    with transaction.atomic():
        # Dependents first, then each table in one statement: Django's cascade would load
        # every delivery and attempt of the chunk to delete them one query per relation.
        EventAttempt.objects.filter(delivery__event_id__in=ids).delete()
        Delivery.objects.filter(event_id__in=ids)._raw_delete(connection.alias)
        deleted = Event.objects.filter(pk__in=ids)._raw_delete(connection.alias)
    logger.info("events: %s older than %s days deleted", deleted, days)
    return deleted
