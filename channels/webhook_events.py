"""Webhook endpoints for events (decision 0084): the writes the admin, the API and
``replay_events`` call, and the listener that turns each recorded event into one delivery
per endpoint that wants it, in the event's own transaction.

An endpoint is a ``WebhookEndpoint`` and its channel (kind ``event_webhook``): the URL, the
``whsec_`` secrets (encrypted) and the enabled flag are the channel's, so the delivery engine
claims, sends, retries, journals and rate-limits events as it does everything else.
"""

from __future__ import annotations

import base64
import logging
import secrets
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from channels.configuration import channel_secrets, save_channel
from channels.engine import relay
from channels.engine.queue import SEND_BATCH_TASK, enqueue
from channels.event_models import EVENT_WEBHOOK_KIND
from channels.exceptions import ChannelConfigurationError
from channels.models import Channel, Delivery, WebhookEndpoint
from config.errors import ProjectError
from events import recorder
from events.models import Event, EventType, parse_public_id

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
MAX_EVENT_TYPES = len(EventType.values)


class EventNotFoundError(ProjectError):
    code = "event_not_found"
    status = 404


def generate_secret() -> str:
    """A new Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def check_event_types(values: Iterable[Any]) -> list[str]:
    """The event types, deduplicated and sorted; raises ChannelConfigurationError naming
    ``event_types`` for an empty list or an unknown type (listing the known ones)."""
    chosen = sorted({str(value) for value in values})
    unknown = [value for value in chosen if value not in EventType.values]
    if unknown:
        known = ", ".join(EventType.values)
        raise ChannelConfigurationError(
            {"event_types": [f"Unknown event type {unknown[0]!r}. Known types: {known}."]}
        )
    if not chosen:
        raise ChannelConfigurationError({"event_types": ["Choose at least one event type."]})
    return chosen


@dataclass(frozen=True)
class EndpointInput:
    url: str
    event_types: Sequence[str]
    description: str = ""
    include_machine_events: bool = False
    is_enabled: bool = True
    owner_id: int | None = None
    timeout: float | None = None


def _config(endpoint_channel: Channel, url: str, timeout: float | None) -> dict[str, Any]:
    current = channel_secrets(endpoint_channel) if endpoint_channel.secrets_encrypted else {}
    return {
        "url": url,
        "timeout": timeout if timeout is not None else endpoint_channel.config.get("timeout"),
        "previous_secret_until": endpoint_channel.config.get("previous_secret_until") or None,
        "secret": current.get("secret", ""),
        "previous_secret": current.get("previous_secret", ""),
    }


def create_endpoint(data: EndpointInput, *, secret: str = "") -> tuple[WebhookEndpoint, str]:
    """Create an endpoint and its channel; returns it and its secret (shown once).

    ``secret`` empty: one is generated. Raises ChannelConfigurationError naming each bad field
    (``url``: not a URL or not a public address; ``event_types``; ``secret``); stores nothing
    then.
    """
    event_types = check_event_types(data.event_types)
    secret = secret or generate_secret()
    channel = Channel(
        name=f"event-endpoint-{uuid.uuid4().hex[:12]}",
        kind=EVENT_WEBHOOK_KIND,
        is_enabled=data.is_enabled,
        batch_size=50,
    )
    with transaction.atomic():
        save_channel(channel, {"url": data.url, "secret": secret, "timeout": data.timeout})
        endpoint = WebhookEndpoint.objects.create(
            channel=channel,
            # From now on: an endpoint gets no history (decision 0084).
            relayed_until=recorder.horizon(),
            description=data.description,
            event_types=event_types,
            include_machine_events=data.include_machine_events,
            owner_id=data.owner_id,
        )
    logger.info("event endpoint %s created", endpoint.pk)
    return endpoint, secret


def update_endpoint(endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    """Change ``url``, ``event_types``, ``description``, ``include_machine_events``,
    ``is_enabled``, ``owner_id`` or ``timeout``. Enabling a disabled endpoint clears its
    failing streak and the reason it was disabled. Raises ChannelConfigurationError naming
    the field; nothing changes then."""
    channel = endpoint.channel
    with transaction.atomic():
        if "event_types" in changes:
            endpoint.event_types = check_event_types(changes["event_types"])
        for name in ("description", "include_machine_events", "owner_id"):
            if name in changes:
                setattr(endpoint, name, changes[name])
        if "url" in changes or "timeout" in changes:
            url = changes.get("url", endpoint.url)
            save_channel(channel, _config(channel, url, changes.get("timeout")))
        if "is_enabled" in changes and bool(changes["is_enabled"]) != channel.is_enabled:
            channel.is_enabled = bool(changes["is_enabled"])
            channel.save(update_fields=["is_enabled", "updated_at"])
            if channel.is_enabled:
                endpoint.failing_since = None
                endpoint.disabled_at = None
                endpoint.disabled_reason = ""
                enqueue(SEND_BATCH_TASK, channel.pk)
        endpoint.save()
    return endpoint


def rotate_secret(endpoint: WebhookEndpoint, *, secret: str = "") -> str:
    """Give the endpoint a new secret (``secret``, else a generated one) and keep signing
    with the current one too for EVENT_SECRET_OVERLAP_HOURS; returns the new secret, shown
    once. Raises ChannelConfigurationError naming ``secret`` when a given one is not valid."""
    channel = endpoint.channel
    with transaction.atomic():
        locked = Channel.objects.select_for_update().get(pk=channel.pk)
        current = channel_secrets(locked)
        until = timezone.now() + timedelta(hours=settings.EVENT_SECRET_OVERLAP_HOURS)
        new = secret or generate_secret()
        save_channel(
            locked,
            {
                "url": locked.config["url"],
                "timeout": locked.config.get("timeout"),
                "secret": new,
                "previous_secret": current.get("secret", ""),
                "previous_secret_until": until.isoformat(),
            },
        )
    endpoint.channel = locked
    logger.info("event endpoint %s: secret rotated", endpoint.pk)
    return new


def previous_secret_until(endpoint: WebhookEndpoint) -> datetime | None:
    """Until when deliveries are also signed with the previous secret (None: not now)."""
    value = endpoint.channel.config.get("previous_secret_until")
    if not value:
        return None
    until = datetime.fromisoformat(str(value))
    return until if until > timezone.now() else None


def delete_endpoint(endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint, its channel, its deliveries and its attempts."""
    endpoint.channel.delete()


# --- Replay -----------------------------------------------------------------------------------


def replay_event(endpoint: WebhookEndpoint, event_id: str | int) -> Delivery:
    """Send one event to the endpoint again (whatever became of it before), or for the first
    time when the endpoint never had it; with a fresh schedule of attempts. A delivery still
    waiting or being sent is left as it is. Raises EventNotFoundError naming ``event_id``."""
    pk = parse_public_id(event_id)
    event = Event.objects.filter(pk=pk).first() if pk is not None else None
    if event is None:
        raise EventNotFoundError(f"No event {event_id}.", field="event_id")
    now = timezone.now()
    with transaction.atomic():
        delivery, created = Delivery.objects.get_or_create(
            kind=Delivery.Kind.EVENT,
            event=event,
            channel_id=endpoint.channel_id,
            defaults={"next_attempt_at": now},
        )
        if not created:
            Delivery.objects.filter(pk=delivery.pk).exclude(
                status__in=(Delivery.Status.QUEUED, Delivery.Status.SENDING)
            ).update(
                status=Delivery.Status.QUEUED,
                attempts=0,
                next_attempt_at=now,
                last_error="",
                updated_at=now,
            )
        enqueue(SEND_BATCH_TASK, endpoint.channel_id)
    logger.info("event endpoint %s: event %s replayed", endpoint.pk, event.pk)
    delivery.refresh_from_db()
    return delivery


def failed_since(endpoint: WebhookEndpoint, since: datetime) -> QuerySet[Delivery]:
    """The endpoint's deliveries of events since ``since`` that failed, died or were left
    uncertain."""
    return Delivery.objects.filter(
        channel_id=endpoint.channel_id,
        kind=Delivery.Kind.EVENT,
        status__in=Delivery.REQUEUEABLE,
        event__occurred_at__gte=since,
    )


def replay_failed_since(endpoint: WebhookEndpoint, since: datetime) -> int:
    """Queue again every event since ``since`` that the endpoint did not take (failed, dead
    or uncertain), with a fresh schedule of attempts. Returns how many."""
    now = timezone.now()
    with transaction.atomic():
        count = failed_since(endpoint, since).update(
            status=Delivery.Status.QUEUED,
            attempts=0,
            next_attempt_at=now,
            last_error="",
            updated_at=now,
        )
        if count:
            enqueue(SEND_BATCH_TASK, endpoint.channel_id)
    logger.info("event endpoint %s: %s failed events replayed", endpoint.pk, count)
    return count


# --- The listener -----------------------------------------------------------------------------


class EndpointListener:
    """events.recorder's listener: what enabled endpoints want, and a relay once the events
    some endpoint wants are committed (decision 0084)."""

    def _endpoints(self) -> list[tuple[int, list[str], bool]]:
        return [
            (channel_id, list(types or []), bool(machine))
            for channel_id, types, machine in WebhookEndpoint.objects.enabled().values_list(
                "channel_id", "event_types", "include_machine_events"
            )
        ]

    def listened(self) -> frozenset[str]:
        keys: set[str] = set()
        for _channel_id, types, machine in self._endpoints():
            keys.update(types)
            if machine:
                keys.update(recorder.interest_key(t, machine=True) for t in types)
        return frozenset(keys)

    def recorded(self, events: Sequence[recorder.Recorded]) -> None:
        # Only the events are written in the change's transaction (a large send records one
        # per message, in every batch): the relay turns them into deliveries after commit.
        if events:
            relay.hint()


LISTENER = EndpointListener()
