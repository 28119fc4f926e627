"""Event endpoints' side of a batch (decision 0084): each attempt's answer kept for the admin,
the endpoint's failing streak, and endpoints failing for too long disabled, their owner told."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone, translation

from channels.backends.base import Outcome, OutcomeStatus
from channels.engine.claims import ClaimedRow
from channels.engine.outcomes import MAX_ERROR_LENGTH
from channels.models import Channel, EventAttempt, WebhookEndpoint

logger = logging.getLogger(__name__)


def record_attempts(
    channel: Channel, rows: Sequence[ClaimedRow], outcomes: Sequence[Outcome], now: datetime
) -> int:
    """Keep one EventAttempt per answered outcome of an endpoint's batch (one INSERT), and
    update its failing streak (one UPDATE): cleared by any success, started by a failure when
    none was running. A 410 Gone disables the endpoint with the reason. Returns the attempts
    kept."""
    endpoint_id = (
        WebhookEndpoint.objects.filter(channel_id=channel.pk).values_list("pk", flat=True).first()
    )
    if endpoint_id is None:
        return 0
    events = {row.pk: row.event_id for row in rows}
    attempts = [
        EventAttempt(
            endpoint_id=endpoint_id,
            delivery_id=outcome.delivery_id,
            event_id=events.get(outcome.delivery_id) or 0,
            attempted_at=now,
            outcome=str(outcome.status),
            status_code=outcome.response.status_code if outcome.response else None,
            latency_ms=outcome.response.latency_ms if outcome.response else None,
            response_excerpt=outcome.response.excerpt if outcome.response else "",
            error=outcome.error[:MAX_ERROR_LENGTH],
        )
        for outcome in outcomes
        if outcome.delivery_id in events
    ]
    EventAttempt.objects.bulk_create(attempts)
    endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id)
    if any(outcome.status == OutcomeStatus.SENT for outcome in outcomes):
        endpoint.update(failing_since=None, last_success_at=now)
    elif outcomes:
        endpoint.filter(failing_since__isnull=True).update(failing_since=now)
    if any(outcome.disable_channel for outcome in outcomes):
        endpoint.update(disabled_at=now, disabled_reason="The endpoint answered 410 Gone.")
    return len(attempts)


def disable_failing_endpoints(now: datetime | None = None) -> int:
    """Disable every enabled endpoint whose attempts have all failed for
    EVENT_ENDPOINT_DISABLE_AFTER_DAYS, and email its owner (through the site's mail, after
    commit, in the site's language). Each endpoint in a transaction of its own; a conditional
    update makes two sweepers disable and tell once. Returns how many were disabled."""
    now = now or timezone.now()
    days = settings.EVENT_ENDPOINT_DISABLE_AFTER_DAYS
    limit = now - timedelta(days=days)
    disabled = 0
    failing = WebhookEndpoint.objects.enabled().filter(failing_since__lte=limit)
    for endpoint in failing.select_related("channel", "owner"):
        with transaction.atomic():
            if not Channel.objects.filter(pk=endpoint.channel_id, is_enabled=True).update(
                is_enabled=False, updated_at=now
            ):
                continue
            since = f"{endpoint.failing_since or limit:%Y-%m-%d %H:%M}"
            reason = f"Every attempt failed from {since} UTC for more than {days:g} days."
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                disabled_at=now, disabled_reason=reason[:300]
            )
            _tell_owner(endpoint, since, days)
        disabled += 1
        logger.warning("Event endpoint %s disabled: failing since %s", endpoint.pk, since)
    return disabled


def _tell_owner(endpoint: WebhookEndpoint, since: str, days: float) -> None:
    owner = endpoint.owner
    if owner is None or not owner.email:
        logger.warning("Event endpoint %s has no owner with an address to tell", endpoint.pk)
        return
    context = {
        "url": endpoint.url,
        "site_name": settings.SITE_NAME,
        "since": since,
        "days": f"{days:g}",
    }
    with translation.override(settings.LANGUAGE_CODE):
        subject = render_to_string("channels/events/endpoint_disabled_subject.txt", context)
        body = render_to_string("channels/events/endpoint_disabled.txt", context)
    send_mail(" ".join(subject.split()), body.strip() + "\n", None, [owner.email])
