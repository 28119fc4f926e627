"""The events outbox: one row per change an integrator may care about (decision 0084).

A row is written by ``events.recorder`` in the transaction of the change it describes, so a
change that rolls back leaves no event and a committed one always has its event. It carries
ids and what the event is about, never an address or a name; an erased subscriber's events
lose their subscriber id (``events.recorder.scrub_subscriber``).
"""

from __future__ import annotations

from typing import Any

from django.db import models


class EventType(models.TextChoices):
    PUBLICATION_PUBLISHED = "publication.published", "A publication was published"
    PUBLICATION_UPDATED = "publication.updated", "A publication was edited (a new version)"
    DISPATCH_COMPLETED = "dispatch.completed", "Every delivery of a dispatch is settled"
    DELIVERY_SENT = "delivery.sent", "A provider accepted a delivery"
    DELIVERY_FAILED = "delivery.failed", "A provider refused a delivery for good"
    DELIVERY_DEAD = "delivery.dead", "Every attempt of a delivery failed"
    DELIVERY_BOUNCED = "delivery.bounced", "A delivery bounced"
    DELIVERY_COMPLAINED = "delivery.complained", "A recipient marked a delivery as spam"
    DELIVERY_OPENED = "delivery.opened", "A delivery was opened"
    DELIVERY_CLICKED = "delivery.clicked", "A link of a delivery was followed"
    SUBSCRIBER_CREATED = "subscriber.created", "A subscriber was added"
    SUBSCRIBER_CONFIRMED = "subscriber.confirmed", "A subscriber confirmed their address"
    SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed", "A subscriber unsubscribed"
    SUBSCRIBER_ERASED = "subscriber.erased", "A subscriber was erased"


#: Event types that can come from a machine (a mail scanner, a proxy): sent only to endpoints
#: that ask for machine events too.
ENGAGEMENT_TYPES = frozenset({EventType.DELIVERY_OPENED, EventType.DELIVERY_CLICKED})

PUBLIC_ID_PREFIX = "evt_"


class Event(models.Model):
    """One recorded change. ``data`` holds ids and the facts of the change only."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=40, choices=EventType.choices)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict)
    # Whose event this is, kept apart from ``data`` so that erasure finds and scrubs it.
    subscriber_id = models.BigIntegerField(null=True, blank=True)
    # An open or click classified as a machine's or a mail proxy's, not a person's.
    is_machine = models.BooleanField(default=False)
    scrubbed_at = models.DateTimeField(null=True, blank=True)
    #: On PostgreSQL, the transaction that wrote it (``pg_current_xact_id()``): its position
    #: for the relay, which takes it once every transaction before it has ended, so that no
    #: event can commit behind what was relayed (decision 0084). None elsewhere: SQLite's
    #: writers take turns, so the id is the position there.
    transaction_id = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["transaction_id"], name="event_transaction"),
            models.Index(
                fields=["subscriber_id"],
                condition=models.Q(subscriber_id__isnull=False),
                name="event_subscriber",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} {self.type}"

    @property
    def public_id(self) -> str:
        """The id integrators see, and the ``webhook-id`` of every delivery of this event."""
        return f"{PUBLIC_ID_PREFIX}{self.pk}"

    def payload(self) -> dict[str, Any]:
        """The JSON body a webhook endpoint receives (Standard Webhooks' shape)."""
        return {
            "id": self.public_id,
            "type": self.type,
            "timestamp": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


def parse_public_id(value: str | int) -> int | None:
    """The primary key named by ``evt_123`` (or ``123``), or None when it names none."""
    text = str(value).strip()
    if text.startswith(PUBLIC_ID_PREFIX):
        text = text[len(PUBLIC_ID_PREFIX) :]
    return int(text) if text.isdigit() and len(text) < 19 else None
