"""Webhook endpoints that receive events, and what each attempt to reach them got back
(decision 0084). Imported by channels.models, which Django reads."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models

from channels.models import Channel, Delivery

#: The backend kind of an endpoint's channel (channels.backends.event_webhook).
EVENT_WEBHOOK_KIND = "event_webhook"


class WebhookEndpointQuerySet(models.QuerySet["WebhookEndpoint"]):
    def enabled(self) -> WebhookEndpointQuerySet:
        return self.filter(channel__is_enabled=True)


class WebhookEndpoint(models.Model):
    """Where events are POSTed, signed (Standard Webhooks), and which ones.

    Its URL, secrets and enabled flag are those of its channel (kind ``event_webhook``): the
    delivery engine sends, retries and journals its deliveries like any other channel's, and
    its secrets are encrypted at rest with the channels' key.
    """

    channel = models.OneToOneField(
        Channel, on_delete=models.CASCADE, related_name="webhook_endpoint", editable=False
    )
    description = models.CharField(max_length=200, blank=True)
    event_types = models.JSONField(default=list, help_text="The event types sent here.")
    include_machine_events = models.BooleanField(
        default=False,
        help_text="Also send opens and clicks made by machines and mail proxies (scanners, "
        "Apple Mail Privacy Protection); by default only people's.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="webhook_endpoints",
        help_text="Told by email when the endpoint is disabled for failing.",
    )
    #: Since when every attempt has failed (None: the last attempt succeeded, or none yet).
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    #: The relay's position (``events.recorder.horizon``): the events from here on have not
    #: been relayed to this endpoint yet (decision 0084).
    relayed_until = models.BigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["pk"]
        verbose_name = "event webhook endpoint"

    def __str__(self) -> str:
        return str(self.channel.config.get("url", f"endpoint {self.pk}"))

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; an existing endpoint's relay position is left as the relay wrote it (a form
        or service holding an older copy must not move it back and resend events)."""
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name != "relayed_until"
            ]
        super().save(*args, **kwargs)

    @property
    def url(self) -> str:
        return str(self.channel.config.get("url", ""))

    @property
    def is_enabled(self) -> bool:
        return self.channel.is_enabled


class EventAttempt(models.Model):
    """One attempt to POST an event to an endpoint: what came back and how long it took.

    ``response_excerpt`` keeps the first characters of the endpoint's answer for the admin
    (the endpoint's own text; the address guard keeps requests to public addresses).
    """

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="attempts")
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="+")
    event_id = models.BigIntegerField()
    attempted_at = models.DateTimeField()
    #: sent, transient, permanent, rate_limited or uncertain (the engine's outcome).
    outcome = models.CharField(max_length=20)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    response_excerpt = models.CharField(max_length=500, blank=True)
    error = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-attempted_at", "-pk"]
        indexes = [
            models.Index(fields=["endpoint", "-attempted_at"], name="eventattempt_recent"),
        ]

    def __str__(self) -> str:
        return f"Attempt of event {self.event_id} to endpoint {self.endpoint_id}: {self.outcome}"
