"""Subscribers, their subscriptions, the consent log and the suppression list."""

from __future__ import annotations

import hashlib
import uuid
import zoneinfo
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Exists, OuterRef
from django.db.models.functions import Lower
from simple_history.models import HistoricalRecords

EMAIL_MAX_LENGTH = 254


def normalize_email(email: str) -> str:
    """The form an address is compared and hashed in: stripped and lower-cased."""
    return email.strip().lower()


def email_hash(email: str) -> str:
    """SHA-256 of the normalised address: what the suppression list keeps after erasure."""
    return hashlib.sha256(normalize_email(email).encode()).hexdigest()


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(
            "%(value)s is not an IANA time zone (for example Europe/Paris).",
            params={"value": value},
            code="invalid_timezone",
        )


#: The hours a digest may go at, local time.
LAST_HOUR = 23


@dataclass(frozen=True)
class DigestTime:
    """The local hour a subscriber's digests go at, and why (decision 0081)."""

    class Reason:
        CHOSEN = "chosen"
        LEARNED = "learned"
        DEFAULT = "default"

    hour: int
    reason: str


def digest_time(digest_hour: int | None, read_hour: int | None, opted_out: bool) -> DigestTime:
    """The local hour digests go at: the hour chosen; else, unless tracking was refused, the
    hour the subscriber usually reads; else DIGEST_HOUR (decision 0081)."""
    if digest_hour is not None:
        return DigestTime(digest_hour, DigestTime.Reason.CHOSEN)
    if read_hour is not None and not opted_out:
        return DigestTime(read_hour, DigestTime.Reason.LEARNED)
    return DigestTime(settings.DIGEST_HOUR, DigestTime.Reason.DEFAULT)


def zone_named(name: str) -> zoneinfo.ZoneInfo:
    """The time zone ``name`` (UTC if this machine does not know it)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


class SubscriberQuerySet(models.QuerySet["Subscriber"]):
    def active(self) -> SubscriberQuerySet:
        return self.filter(status=Subscriber.Status.ACTIVE, confirmed_at__isnull=False)

    def reachable(self) -> SubscriberQuerySet:
        """Active, confirmed, and not on the suppression list: who may be sent bulk mail.

        The one definition of reachability: the engine's fan-out compiles its audience from
        it, the claim of a batch checks each row against it, digests select with it.
        """
        return self.active().exclude(
            Exists(Suppression.objects.filter(email_hash=OuterRef("email_hash")))
        )

    def by_email(self, email: str) -> SubscriberQuerySet:
        return self.filter(email__iexact=normalize_email(email))


class Subscriber(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending confirmation"
        ACTIVE = "active", "Active"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    class EmailFormat(models.TextChoices):
        HTML = "html", "HTML with a plain-text alternative"
        TEXT = "text", "Plain text only"

    email = models.EmailField(max_length=EMAIL_MAX_LENGTH)
    # sha256 of the normalised address, so fan-out can join the suppression list in SQL.
    # Indexed through Meta.indexes: a db_index would add a useless LIKE index on PostgreSQL,
    # which costs every import and sign-up a fifth index write.
    email_hash = models.CharField(max_length=64, editable=False)
    name = models.CharField(max_length=200, blank=True)
    locale = models.CharField(max_length=10, choices=settings.LANGUAGES, default="en")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # Decision 0081. Empty: "let us pick", the hour they usually read (read_hour) once known,
    # else DIGEST_HOUR; both hours are local, in ``timezone``.
    digest_hour = models.PositiveSmallIntegerField(
        "digest hour",
        null=True,
        blank=True,
        validators=[MaxValueValidator(LAST_HOUR)],
        help_text="Local hour (0-23) chosen for digests; empty: the hour they usually read.",
    )
    # Learned from their human opens and clicks by channels.read_hours (rewritten daily, kept
    # out of the history); empty while they have read too few messages.
    read_hour = models.PositiveSmallIntegerField(
        "usual reading hour", null=True, blank=True, editable=False
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # Engagement tracking (decision 0078): opted out, this subscriber's mail has no open pixel
    # and no click redirects, whatever the channel says.
    # db_default too: the PostgreSQL import writes rows in SQL naming its columns.
    tracking_opt_out = models.BooleanField(
        "no open or click tracking", default=False, db_default=False
    )
    email_format = models.CharField(
        max_length=10, choices=EmailFormat.choices, default=EmailFormat.HTML
    )
    source = models.CharField(max_length=50, default="signup")
    # Changing it invalidates every link already sent (tokens carry it).
    token_key = models.UUIDField(default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords(excluded_fields=["token_key", "read_hour"])

    objects = SubscriberQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(digest_hour__lte=LAST_HOUR), name="subscriber_digest_hour_range"
            ),
            models.CheckConstraint(
                condition=models.Q(read_hour__lte=LAST_HOUR), name="subscriber_read_hour_range"
            ),
        ]
        indexes = [
            models.Index(fields=["status"], name="subscriber_status"),
            models.Index(fields=["email_hash"], name="subscriber_email_hash"),
        ]

    def __str__(self) -> str:
        return self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email_hash = email_hash(self.email)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "email" in update_fields:
            kwargs["update_fields"] = {*update_fields, "email_hash"}
        super().save(*args, **kwargs)

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """The subscriber's time zone (UTC if the stored name is unknown to this machine)."""
        return zone_named(self.timezone)

    def digest_time(self) -> DigestTime:
        """The local hour their digests go at, and why (see digest_time)."""
        return digest_time(self.digest_hour, self.read_hour, self.tracking_opt_out)


class SubscriptionQuerySet(models.QuerySet["Subscription"]):
    def receiving_immediately(self, today: date) -> SubscriptionQuerySet:
        """Subscriptions that get each publication as it is sent (not digest, not paused);
        the delivery engine's fan-out selects its audience with it."""
        return self.filter(frequency=Subscription.Frequency.IMMEDIATE).exclude(
            paused_until__gt=today
        )

    def receiving_digest(self, frequency: str, today: date) -> SubscriptionQuerySet:
        """Subscriptions whose publications go into the ``frequency`` ("daily" or "weekly")
        digest sent ``today``: not paused that day (channels.digests)."""
        return self.filter(frequency=frequency).exclude(paused_until__gt=today)


class Subscription(models.Model):
    class Frequency(models.TextChoices):
        IMMEDIATE = "immediate", "Immediately"
        DAILY = "daily", "Daily digest"
        WEEKLY = "weekly", "Weekly digest"
        PAUSED = "paused", "Paused"

    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="subscriptions"
    )
    topic = models.ForeignKey(
        "publishing.Topic", on_delete=models.CASCADE, related_name="subscriptions"
    )
    frequency = models.CharField(
        max_length=20, choices=Frequency.choices, default=Frequency.IMMEDIATE
    )
    # Nothing is sent before this day, whatever the frequency; frequency "paused" with no
    # date means paused until the subscriber changes it.
    paused_until = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    objects = SubscriptionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "topic"], name="one_subscription_per_topic"
            ),
        ]
        indexes = [models.Index(fields=["topic", "frequency"], name="subscription_topic_freq")]

    def __str__(self) -> str:
        return f"{self.subscriber_id} → {self.topic_id} ({self.frequency})"


class ConsentEvent(models.Model):
    """What a subscriber agreed to or withdrew, when, and from which form: never edited."""

    class Action(models.TextChoices):
        SIGNUP = "signup", "Signed up"
        CONFIRM = "confirm", "Confirmed"
        PREFERENCES = "preferences", "Changed preferences"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribed"
        RESUBSCRIBE = "resubscribe", "Subscribed again"
        IMPORT = "import", "Imported with consent"
        ERASE = "erase", "Erased"
        BOUNCE = "bounce", "Bounced"
        COMPLAINT = "complaint", "Complained"

    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="consent_events"
    )
    email_hash = models.CharField(max_length=64)
    action = models.CharField(max_length=20, choices=Action.choices)
    form_version = models.CharField(max_length=50, blank=True)
    # IPv4 truncated to /24, IPv6 to /48, before it is stored.
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The daily email limit counts one address's recent sign-ups.
            models.Index(fields=["email_hash", "created_at"], name="consent_hash_created"),
        ]

    def __str__(self) -> str:
        return f"{self.action} at {self.created_at:%Y-%m-%d %H:%M}"


class Suppression(models.Model):
    """Addresses never sent to again, kept only as a hash (so erasure keeps them out)."""

    class Reason(models.TextChoices):
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Hard bounce"
        COMPLAINED = "complained", "Complaint"
        ERASED = "erased", "Erased on request"
        MANUAL = "manual", "Added by an operator"

    email_hash = models.CharField(max_length=64, unique=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email_hash[:12]}… ({self.reason})"


class GrowthWeek(models.Model):
    """Subscribers gained and lost in one week (Monday to Sunday, in the site's time zone),
    overall (``topic`` empty) and per topic: what the growth pages and
    ``GET /api/v1/stats/subscribers/`` read. Kept by a periodic task that recounts the weeks
    that can still change (subscribers.growth), so reading never scans the subscribers."""

    week = models.DateField(help_text="The Monday the week starts on.")
    topic = models.ForeignKey(
        "publishing.Topic", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    joined = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["week", "topic"],
                condition=models.Q(topic__isnull=False),
                name="growthweek_topic_unique",
            ),
            models.UniqueConstraint(
                fields=["week"], condition=models.Q(topic__isnull=True), name="growthweek_unique"
            ),
        ]
        ordering = ["week"]

    def __str__(self) -> str:
        return f"Week of {self.week}: +{self.joined} -{self.left}"


class ReaderFeedback(models.Model):
    """A reader's "more like this" or "less like this" about one publication (decision 0080):
    one row per subscriber and publication, the latest choice winning. Relevance ranking reads
    it as an explicit signal; the preference center lists it and clears it."""

    class Choice(models.TextChoices):
        MORE = "more", "More like this"
        LESS = "less", "Less like this"

    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="reader_feedback"
    )
    publication = models.ForeignKey(
        "publishing.Publication", on_delete=models.CASCADE, related_name="+"
    )
    choice = models.CharField(max_length=4, choices=Choice.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "publication"], name="one_feedback_per_publication"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscriber_id} → {self.publication_id}: {self.choice}"
