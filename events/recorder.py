"""Recording events: the one function every app calls in the transaction of its change.

``record`` and ``record_many`` write the event rows in the transaction of the change, so an
event commits or rolls back with it, then tell the listeners (the webhook endpoints of
channels, connected at start-up), which relay the events once committed. An event nobody
listens to is not written: the outbox holds what some enabled endpoint asked for, nothing
else. ``horizon`` gives a relay the position below which every event is final (decision
0084). This module imports no other app: the listeners register themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from events.models import ENGAGEMENT_TYPES, Event

logger = logging.getLogger(__name__)

MACHINE_SUFFIX = ":machine"


@dataclass(frozen=True)
class NewEvent:
    """An event to record: its type, its data (ids and facts, never an address or a name)."""

    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    subscriber_id: int | None = None
    #: An open or click a machine or a mail proxy made: only endpoints asking for those get it.
    is_machine: bool = False
    occurred_at: datetime | None = None

    @property
    def interest(self) -> str:
        return interest_key(self.type, machine=self.is_machine)


def interest_key(event_type: str, *, machine: bool = False) -> str:
    """What a listener lists to receive ``event_type``: the type, with ``:machine`` appended
    for opens and clicks that were not a person's."""
    if machine and event_type in ENGAGEMENT_TYPES:
        return event_type + MACHINE_SUFFIX
    return event_type


class Recorded(NamedTuple):
    """An event just written: what a listener needs to route it (a tuple, not a model
    instance: a batch records hundreds)."""

    pk: int
    type: str
    is_machine: bool


class Listener(Protocol):
    def listened(self) -> frozenset[str]:
        """The interest keys (``interest_key``) some enabled consumer wants now."""

    def recorded(self, events: Sequence[Recorded]) -> None:
        """Called with the events just written, inside the transaction that wrote them
        (which may still roll back: act after commit)."""


_listeners: list[Listener] = []


def connect(listener: Listener) -> None:
    """Add ``listener`` (once): channels connects its webhook endpoints at start-up."""
    if listener not in _listeners:
        _listeners.append(listener)


def listened() -> frozenset[str]:
    """Every interest key some listener wants now (one small query per listener)."""
    keys: set[str] = set()
    for listener in _listeners:
        keys |= listener.listened()
    return frozenset(keys)


def record(
    event_type: str,
    data: Mapping[str, Any],
    *,
    subscriber_id: int | None = None,
    is_machine: bool = False,
) -> Recorded | None:
    """Record one event in the caller's transaction (or a transaction of its own).

    Returns it, or None when no listener wants this type.
    """
    written = record_many([NewEvent(event_type, data, subscriber_id, is_machine)])
    return written[0] if written else None


def record_many(
    items: Iterable[NewEvent], *, wanted: frozenset[str] | None = None
) -> list[Recorded]:
    """Write the events some listener wants and hand them to the listeners, in one
    transaction: the caller's when there is one (no savepoint), else a new one.

    ``wanted`` is ``listened()`` when the caller already read it. Returns the events written.
    """
    items = list(items)
    if not items:
        return []
    wanted = listened() if wanted is None else wanted
    kept = [item for item in items if item.interest in wanted]
    if not kept:
        return []
    now = timezone.now()
    with transaction.atomic(savepoint=False):
        written = _insert(kept, now)
        for listener in _listeners:
            listener.recorded(written)
    logger.debug("events: %s recorded", len(written))
    return written


def _insert(items: list[NewEvent], now: datetime) -> list[Recorded]:
    """Insert the events; returns them with their ids. On PostgreSQL one INSERT ... SELECT
    FROM jsonb_array_elements(one parameter): a batch's 500 events cost one short statement
    and no model instance."""
    if connection.vendor != "postgresql":
        rows = Event.objects.bulk_create(
            Event(
                type=item.type,
                occurred_at=item.occurred_at or now,
                data=dict(item.data),
                subscriber_id=item.subscriber_id,
                is_machine=item.is_machine,
            )
            for item in items
        )
        return [Recorded(row.pk, row.type, row.is_machine) for row in rows]
    table = Event._meta.db_table
    # The batch as one JSON array of objects: PostgreSQL parses one document, where a jsonb[]
    # parameter (an array literal of escaped JSON texts) cost twice as much per event.
    sql = f"""
        INSERT INTO {table} (type, occurred_at, data, subscriber_id, is_machine, transaction_id)
        SELECT e->>'t', (e->>'o')::timestamptz, e->'d', (e->>'s')::bigint, (e->>'m')::boolean,
            pg_current_xact_id()::text::bigint
        FROM jsonb_array_elements(%s::jsonb) AS e
        RETURNING id
    """  # noqa: S608 (table name from model metadata, values are parameters)
    batch = [
        {
            "t": str(item.type),
            "o": (item.occurred_at or now).isoformat(),
            "d": item.data,
            "s": item.subscriber_id,
            "m": item.is_machine,
        }
        for item in items
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(batch, cls=DjangoJSONEncoder)])
        ids = [pk for (pk,) in cursor.fetchall()]
    # INSERT ... SELECT FROM jsonb_array_elements returns the ids in the array's order.
    return [
        Recorded(pk, str(item.type), item.is_machine) for pk, item in zip(ids, items, strict=True)
    ]


def horizon() -> int:
    """The position (``Event.transaction_id`` on PostgreSQL, the id elsewhere) below which
    every event is final: no transaction still running can commit an event there.

    On PostgreSQL, the oldest transaction still running (the ``xmin`` of a fresh snapshot):
    every transaction before it has committed or rolled back. An id would not do: ids are
    taken when rows are inserted, not when they commit, so a later id may commit first. On
    SQLite writers take turns, so the next id is the horizon.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        else:
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {Event._meta.db_table}")  # noqa: S608
        (value,) = cursor.fetchone()
    return int(value)


def scrub_subscriber(subscriber_id: int) -> int:
    """Remove an erased subscriber from their past events: the subscriber id goes from the
    row and from its data (deliveries not yet sent carry the scrubbed data). Runs in the
    erasure's transaction. Returns how many events were scrubbed."""
    now = timezone.now()
    scrubbed = 0
    for event in Event.objects.filter(subscriber_id=subscriber_id).only("pk", "data"):
        data = {k: v for k, v in event.data.items() if k != "subscriber_id"}
        data["subscriber_id"] = None
        Event.objects.filter(pk=event.pk).update(data=data, subscriber_id=None, scrubbed_at=now)
        scrubbed += 1
    if scrubbed:
        logger.info("events: %s events of subscriber %s scrubbed", scrubbed, subscriber_id)
    return scrubbed
