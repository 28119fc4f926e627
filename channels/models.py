"""Channels (configured in the database), deliveries (the ledger) and worker heartbeats."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q


class Channel(models.Model):
    """A configured destination: an email provider, a Slack channel, a Discord or HTTP webhook."""

    class CircuitState(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=50, help_text="The backend type, from the registry.")
    is_enabled = models.BooleanField(default=True)
    # Non-secret settings, validated by the backend's schema on save.
    config = models.JSONField(default=dict, blank=True)
    # Secret settings, Fernet-encrypted JSON (channels.crypto); never shown back in full.
    secrets_encrypted = models.TextField(blank=True, default="")
    topics = models.ManyToManyField(
        "publishing.Topic",
        blank=True,
        related_name="channels",
        help_text="Broadcast channels carry publications of these topics; none means all.",
    )
    rate_limit_per_second = models.FloatField(
        null=True, blank=True, help_text="Messages per second across all workers; empty: no limit."
    )
    batch_size = models.PositiveIntegerField(default=100)
    circuit_state = models.CharField(
        max_length=20, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=1000, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def due(self, now: datetime) -> DeliveryQuerySet:
        """Queued deliveries whose next attempt time has come."""
        return self.filter(status=Delivery.Status.QUEUED, next_attempt_at__lte=now)

    def lease_expired(self, now: datetime) -> DeliveryQuerySet:
        """Deliveries claimed by a worker that has not finished in time (it probably died)."""
        return self.filter(status=Delivery.Status.SENDING, lease_expires_at__lt=now)

    def settled(self) -> DeliveryQuerySet:
        return self.filter(
            status__in=[Delivery.Status.SENT, Delivery.Status.FAILED, Delivery.Status.DEAD]
        )


class Delivery(models.Model):
    """One message for one recipient on one channel: the ledger row the engine works from."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        DEAD = "dead", "Dead"

    dispatch = models.ForeignKey(
        "publishing.Dispatch", on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="deliveries")
    # Empty for broadcast channels (one message per channel, not per subscriber).
    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["dispatch", "channel", "subscriber"],
                condition=Q(subscriber__isnull=False),
                name="one_delivery_per_recipient",
            ),
            models.UniqueConstraint(
                fields=["dispatch", "channel"],
                condition=Q(subscriber__isnull=True),
                name="one_broadcast_per_channel",
            ),
        ]
        indexes = [
            # The claim: queued rows of a channel whose time has come, oldest first.
            models.Index(
                fields=["channel", "next_attempt_at"],
                condition=Q(status="queued"),
                name="delivery_due",
            ),
            # The sweeper: rows whose lease ran out.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="sending"),
                name="delivery_lease",
            ),
            models.Index(fields=["dispatch", "status"], name="delivery_dispatch_status"),
            models.Index(fields=["channel", "status"], name="delivery_channel_status"),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.status})"


class WorkerHeartbeat(models.Model):
    """Written by each django-q2 cluster while it polls: how /readyz knows a worker is alive."""

    name = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%H:%M:%S}"
