"""Read-only views of a subscriber: the frequency the preference center shows, everything we
store about one person, and what ``subscriber_status`` reports about an address."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from subscribers.models import (
    ConsentEvent,
    Subscriber,
    Subscription,
    Suppression,
    email_hash,
    normalize_email,
)


def topic_slugs(subscriber: Subscriber) -> list[str]:
    """The slugs of the subscriber's topics, sorted."""
    return sorted(subscriber.subscriptions.values_list("topic__slug", flat=True))


def current_frequency(subscriber: Subscriber, today: date) -> tuple[str, date | None]:
    """The frequency the preference center shows: "paused" while a pause date is ahead."""
    return frequency_of(subscriber.subscriptions.order_by("pk").first(), today)


def frequency_of(subscription: Subscription | None, today: date) -> tuple[str, date | None]:
    """The frequency and pause date one subscription stands for (every subscription of a
    subscriber shares them): ("paused", the date) while a pause date is ahead, ("paused", None)
    when paused until changed, else (the frequency, None)."""
    if subscription is None:
        return Subscription.Frequency.IMMEDIATE, None
    if subscription.paused_until is not None and subscription.paused_until > today:
        return Subscription.Frequency.PAUSED, subscription.paused_until
    return subscription.frequency, None


def export_subscriber_data(subscriber: Subscriber) -> dict[str, Any]:
    """Everything stored about one subscriber, as JSON-ready data (the preference center's
    "what we store" and its download)."""

    def stamp(value: datetime | date | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "status": subscriber.status,
        "locale": subscriber.locale,
        "timezone": subscriber.timezone,
        "digest_hour": subscriber.digest_hour,
        "read_hour": subscriber.read_hour,
        "email_format": subscriber.email_format,
        "source": subscriber.source,
        "created_at": stamp(subscriber.created_at),
        "confirmed_at": stamp(subscriber.confirmed_at),
        "unsubscribed_at": stamp(subscriber.unsubscribed_at),
        "subscriptions": [
            {
                "topic": subscription.topic.slug,
                "topic_name": subscription.topic.name,
                "frequency": subscription.frequency,
                "paused_until": stamp(subscription.paused_until),
                "since": stamp(subscription.created_at),
            }
            for subscription in subscriber.subscriptions.select_related("topic").order_by(
                "topic__slug"
            )
        ],
        "consent_events": [
            {
                "action": event.action,
                "at": stamp(event.created_at),
                "form_version": event.form_version,
                "ip_address": event.ip_address,
                "user_agent": event.user_agent,
                "detail": event.detail,
            }
            for event in ConsentEvent.objects.filter(email_hash=subscriber.email_hash).order_by(
                "created_at", "pk"
            )
        ],
        # "More / less like this" (decision 0080).
        "reader_feedback": [
            {"publication": slug, "choice": choice, "at": stamp(at)}
            for slug, choice, at in subscriber.reader_feedback.order_by(
                "updated_at", "pk"
            ).values_list("publication__slug", "choice", "updated_at")
        ],
    }


@dataclass
class SubscriberStatus:
    """What ``subscriber_status`` reports about one address."""

    email_hash: str
    subscriber: Subscriber | None
    suppression: Suppression | None
    topics: list[str] = field(default_factory=list)


def subscriber_status(email: str) -> SubscriberStatus:
    """The subscriber, suppression and topics of an address (none of them may exist)."""
    hashed = email_hash(email)
    subscriber = Subscriber.objects.by_email(normalize_email(email)).first()
    return SubscriberStatus(
        email_hash=hashed,
        subscriber=subscriber,
        suppression=Suppression.objects.filter(email_hash=hashed).first(),
        topics=topic_slugs(subscriber) if subscriber else [],
    )
