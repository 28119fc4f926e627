"""Every write of the subscribers app: sign-up, confirmation, preferences, unsubscribe, erasure,
import and export. Pages, the API, the admin and the commands call these and nothing else.

The reads they need sit beside the writes and are importable from here too: the consent log's
Origin (subscribers.consent), what a link names (subscribers.links), what we store about someone
(subscribers.queries), and the CSV import and export (subscribers.imports, subscribers.exports).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from events import recorder
from events.models import EventType
from publishing.models import Topic
from subscribers import tokens
from subscribers.consent import Origin, log_consent, truncate_ip
from subscribers.exports import export_subscribers
from subscribers.imports import ImportOptions, ImportReport, import_subscribers
from subscribers.links import (
    UnsubscribeLink,
    access_subscriber,
    is_forgotten,
    manage_token_for,
    read_confirmation,
    unsubscribe_subscriber,
    unsubscribe_token_for,
)
from subscribers.mail import emails_sent_today, send_on_commit
from subscribers.models import (
    ConsentEvent,
    Subscriber,
    Subscription,
    Suppression,
    email_hash,
    normalize_email,
)
from subscribers.queries import (
    current_frequency,
    export_subscriber_data,
    subscriber_status,
    topic_slugs,
)
from subscribers.signals import subscriber_erased

logger = logging.getLogger(__name__)

__all__ = [
    "ImportOptions",
    "ImportReport",
    "Keep",
    "Origin",
    "SignupOutcome",
    "UnsubscribeLink",
    "access_subscriber",
    "confirm_subscription",
    "current_frequency",
    "erase_subscriber",
    "export_subscriber_data",
    "export_subscribers",
    "import_subscribers",
    "is_forgotten",
    "manage_token_for",
    "read_confirmation",
    "record_feedback_suppression",
    "resubscribe",
    "sign_up",
    "subscriber_status",
    "suppress_email",
    "truncate_ip",
    "unsubscribe",
    "unsubscribe_subscriber",
    "unsubscribe_token_for",
    "update_preferences",
]

# Suppressions that a person's own new, confirmed consent does not lift by a mere sign-up email:
# we send nothing to these, to protect the sending reputation (decision 0022).
NO_MAIL_REASONS = frozenset({Suppression.Reason.BOUNCED, Suppression.Reason.COMPLAINED})


# --- Sign-up and confirmation -----------------------------------------------------------------


def subscriber_data(subscriber: Subscriber, **extra: Any) -> dict[str, Any]:
    """What a subscriber event says (decision 0084): the id and the state, never the address
    or the name."""
    return {
        "subscriber_id": subscriber.pk,
        "status": subscriber.status,
        "source": subscriber.source,
        **extra,
    }


@dataclass(frozen=True)
class SignupOutcome:
    """What a sign-up did. Never shown to the person signing up: every outcome looks the same."""

    subscriber_id: int
    email: str  # which email was sent: "confirmation", "already_subscribed" or "none"
    reason: str = ""  # why no email: "daily_limit", "suppressed"


def _lock_or_create(email: str, defaults: dict[str, Any]) -> tuple[Subscriber, bool]:
    existing = Subscriber.objects.select_for_update().by_email(email).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            return Subscriber.objects.create(email=email.strip(), **defaults), True
    except IntegrityError:
        # Another sign-up for the same address committed between our read and our insert.
        return Subscriber.objects.select_for_update().by_email(email).get(), False


def sign_up(
    *,
    email: str,
    topics: Sequence[Topic],
    origin: Origin,
    name: str = "",
    locale: str = "en",
    time_zone: str = "UTC",
) -> SignupOutcome:
    """Start a double opt-in for ``email``, or remind an active subscriber where their
    preferences are. The answer shown to the requester must not depend on the outcome.

    Input is already validated (form or serializer). At most SUBSCRIBERS_SIGNUP_EMAILS_PER_DAY
    emails reach one address per 24 hours, however many sign-ups name it; an address
    suppressed for a bounce or a complaint gets none. Emails go out after commit.
    """
    hashed = email_hash(email)
    now = timezone.now()
    with transaction.atomic():
        subscriber, created = _lock_or_create(
            email,
            {"name": name, "locale": locale, "timezone": time_zone, "source": origin.via},
        )
        suppression = Suppression.objects.filter(email_hash=hashed).first()
        no_mail = suppression is not None and suppression.reason in NO_MAIL_REASONS
        if not created and subscriber.status == Subscriber.Status.ACTIVE:
            template = "already_subscribed"
        elif no_mail:
            # Nothing changes for an address that bounced or complained: no mail can confirm it.
            template = "confirmation"
        else:
            template = "confirmation"
            # An active subscriber's choices are changed only through their own links, never by
            # whoever types their address into a form.
            subscriber.name = name or subscriber.name
            subscriber.locale = locale
            subscriber.timezone = time_zone
            if subscriber.status != Subscriber.Status.PENDING:
                subscriber.status = Subscriber.Status.PENDING
            subscriber.save(update_fields=["name", "locale", "timezone", "status", "updated_at"])
            _replace_topics(subscriber, topics, Subscription.Frequency.IMMEDIATE)

        if created:
            recorder.record(
                EventType.SUBSCRIBER_CREATED,
                subscriber_data(subscriber, topics=[topic.slug for topic in topics]),
                subscriber_id=subscriber.pk,
            )
        reason = ""
        if no_mail:
            reason = "suppressed"
        elif emails_sent_today(hashed, now) >= settings.SUBSCRIBERS_SIGNUP_EMAILS_PER_DAY:
            reason = "daily_limit"
        sent = template if not reason else "none"
        log_consent(
            ConsentEvent.Action.SIGNUP,
            origin,
            subscriber=subscriber,
            hashed=hashed,
            detail={
                "topics": sorted(topic.slug for topic in topics),
                "email": sent,
                "email_sent": not reason,
            },
        )
        if not reason:
            extra: dict[str, Any] = {}
            if template == "confirmation":
                token = tokens.confirmation_token(subscriber.pk, subscriber.token_key)
                extra = {
                    "confirm_url": tokens.confirm_url(token),
                    "max_age_days": settings.SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS,
                }
            send_on_commit(subscriber.pk, template, **extra)
    logger.info(
        "subscribers: sign-up for subscriber %s (created=%s, email=%s, reason=%s)",
        subscriber.pk,
        created,
        sent,
        reason,
    )
    return SignupOutcome(subscriber_id=subscriber.pk, email=sent, reason=reason)


def confirm_subscription(token: str, origin: Origin) -> tuple[Subscriber, bool]:
    """Activate the subscriber a confirmation token names and log their consent.

    Returns (subscriber, changed); confirming twice changes nothing the second time (and sends
    the welcome email once). Lifts the address's suppression: the person has just proved they
    want this mail. Raises
    InvalidLinkError (code ``expired_link`` or ``invalid_link``).
    """
    with transaction.atomic():
        subscriber = read_confirmation(token)
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status == Subscriber.Status.ACTIVE:
            return subscriber, False
        now = timezone.now()
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.confirmed_at = now
        subscriber.unsubscribed_at = None
        subscriber.save(update_fields=["status", "confirmed_at", "unsubscribed_at", "updated_at"])
        Suppression.objects.filter(email_hash=subscriber.email_hash).delete()
        log_consent(
            ConsentEvent.Action.CONFIRM,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
            detail={"topics": topic_slugs(subscriber)},
        )
        # The welcome email: what they will receive and where to change it (after commit).
        names = sorted(subscriber.subscriptions.values_list("topic__name", flat=True))
        send_on_commit(subscriber.pk, "welcome", topics=names)
        recorder.record(
            EventType.SUBSCRIBER_CONFIRMED,
            subscriber_data(subscriber),
            subscriber_id=subscriber.pk,
        )
    logger.info("subscribers: subscriber %s confirmed", subscriber.pk)
    return subscriber, True


# --- Preferences ------------------------------------------------------------------------------


def _replace_topics(subscriber: Subscriber, topics: Iterable[Topic], frequency: str) -> None:
    wanted = {topic.pk for topic in topics}
    subscriber.subscriptions.exclude(topic_id__in=wanted).delete()
    have = set(subscriber.subscriptions.values_list("topic_id", flat=True))
    for topic_id in sorted(wanted - have):
        Subscription.objects.create(subscriber=subscriber, topic_id=topic_id, frequency=frequency)


class Keep(enum.Enum):
    """A value update_preferences leaves as it is (where None is a value of its own)."""

    KEEP = "keep"


def update_preferences(
    subscriber: Subscriber,
    *,
    topics: Sequence[Topic],
    frequency: str,
    paused_until: date | None,
    email_format: str,
    origin: Origin,
    name: str | None = None,
    locale: str | None = None,
    time_zone: str | None = None,
    tracking_opt_out: bool | None = None,
    digest_hour: int | Keep | None = Keep.KEEP,
) -> Subscriber:
    """Apply the preference center's choices to every subscription and log the change.

    Frequency "paused" with a date keeps the frequency the subscriber had and sets
    ``paused_until``, so delivery resumes by itself that day; "paused" without a date is paused
    until changed (decision 0023). ``digest_hour``: a local hour 0-23, or None for "let us
    pick" (decision 0081). Opting out of tracking forgets the reading hour learnt from it.
    Input is already validated by the form.
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if frequency == Subscription.Frequency.PAUSED and paused_until is not None:
            previous = subscriber.subscriptions.exclude(
                frequency=Subscription.Frequency.PAUSED
            ).values_list("frequency", flat=True)
            stored_frequency = previous.first() or Subscription.Frequency.IMMEDIATE
            stored_pause: date | None = paused_until
        else:
            stored_frequency, stored_pause = frequency, None
        _replace_topics(subscriber, topics, stored_frequency)
        subscriber.subscriptions.update(
            frequency=stored_frequency, paused_until=stored_pause, updated_at=timezone.now()
        )
        subscriber.email_format = email_format
        fields = ["email_format", "updated_at"]
        changes: tuple[tuple[str, object], ...] = (
            ("name", name),
            ("locale", locale),
            ("timezone", time_zone),
            ("tracking_opt_out", tracking_opt_out),
        )
        for attribute, value in changes:
            if value is not None:
                setattr(subscriber, attribute, value)
                fields.append(attribute)
        if not isinstance(digest_hour, Keep):
            subscriber.digest_hour = digest_hour
            fields.append("digest_hour")
        if subscriber.tracking_opt_out and subscriber.read_hour is not None:
            subscriber.read_hour = None
            fields.append("read_hour")
        subscriber.save(update_fields=fields)
        log_consent(
            ConsentEvent.Action.PREFERENCES,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
            detail={
                "topics": sorted(topic.slug for topic in topics),
                "frequency": frequency,
                "paused_until": paused_until.isoformat() if paused_until else None,
                "email_format": email_format,
                "tracking_opt_out": subscriber.tracking_opt_out,
                "timezone": subscriber.timezone,
                "digest_hour": subscriber.digest_hour,
            },
        )
    logger.info("subscribers: subscriber %s changed preferences", subscriber.pk)
    return subscriber


# --- Unsubscribe, resubscribe, erase, suppress ------------------------------------------------


def unsubscribe(subscriber: Subscriber, origin: Origin) -> bool:
    """Stop all mail to this subscriber and suppress the address. Idempotent.

    Returns True when this call changed something, False when already unsubscribed. The
    subscriptions are kept, so subscribing again restores the same choices.
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status == Subscriber.Status.UNSUBSCRIBED:
            return False
        subscriber.status = Subscriber.Status.UNSUBSCRIBED
        subscriber.unsubscribed_at = timezone.now()
        subscriber.save(update_fields=["status", "unsubscribed_at", "updated_at"])
        Suppression.objects.get_or_create(
            email_hash=subscriber.email_hash,
            defaults={"reason": Suppression.Reason.UNSUBSCRIBED, "note": origin.via},
        )
        log_consent(
            ConsentEvent.Action.UNSUBSCRIBE,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
        )
        recorder.record(
            EventType.SUBSCRIBER_UNSUBSCRIBED,
            {**subscriber_data(subscriber), "via": origin.via},
            subscriber_id=subscriber.pk,
        )
    logger.info("subscribers: subscriber %s unsubscribed via %s", subscriber.pk, origin.via)
    return True


def resubscribe(subscriber: Subscriber, origin: Origin) -> bool:
    """Undo an unsubscribe from the subscriber's own link (which proves the mailbox).

    Only an unsubscribed subscriber who had confirmed before is reactivated; a bounce or a
    complaint suppression stays. Returns True when the subscriber is active again.
    """
    with transaction.atomic():
        subscriber = Subscriber.objects.select_for_update().get(pk=subscriber.pk)
        if subscriber.status != Subscriber.Status.UNSUBSCRIBED or subscriber.confirmed_at is None:
            return False
        if Suppression.objects.filter(
            email_hash=subscriber.email_hash, reason__in=NO_MAIL_REASONS
        ).exists():
            return False
        Suppression.objects.filter(
            email_hash=subscriber.email_hash, reason=Suppression.Reason.UNSUBSCRIBED
        ).delete()
        subscriber.status = Subscriber.Status.ACTIVE
        subscriber.unsubscribed_at = None
        subscriber.save(update_fields=["status", "unsubscribed_at", "updated_at"])
        log_consent(
            ConsentEvent.Action.RESUBSCRIBE,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
        )
    logger.info("subscribers: subscriber %s subscribed again", subscriber.pk)
    return True


def suppress_email(email: str, reason: str, note: str = "") -> Suppression:
    """Add an address's hash to the suppression list (keeping an existing, stronger reason)."""
    suppression, _ = Suppression.objects.get_or_create(
        email_hash=email_hash(email), defaults={"reason": reason, "note": note[:500]}
    )
    return suppression


#: A provider's feedback replaces these weaker reasons: an unsubscribed address that then
#: bounced must not be let back by "subscribe again" or a confirmation email (decision 0022).
FEEDBACK_UPGRADES: dict[str, frozenset[str]] = {
    Suppression.Reason.BOUNCED: frozenset(
        {Suppression.Reason.UNSUBSCRIBED, Suppression.Reason.MANUAL}
    ),
    Suppression.Reason.COMPLAINED: frozenset(
        {Suppression.Reason.UNSUBSCRIBED, Suppression.Reason.MANUAL, Suppression.Reason.BOUNCED}
    ),
}
FEEDBACK_STATUS: dict[str, str] = {
    Suppression.Reason.BOUNCED: Subscriber.Status.BOUNCED,
    Suppression.Reason.COMPLAINED: Subscriber.Status.COMPLAINED,
}
FEEDBACK_ACTION: dict[str, str] = {
    Suppression.Reason.BOUNCED: ConsentEvent.Action.BOUNCE,
    Suppression.Reason.COMPLAINED: ConsentEvent.Action.COMPLAINT,
}


def record_feedback_suppression(
    email: str,
    reason: str,
    origin: Origin,
    *,
    note: str = "",
    detail: dict[str, Any] | None = None,
) -> bool:
    """Suppress an address a provider reported as hard-bounced or complained, and log it.

    ``reason`` is ``Suppression.Reason.BOUNCED`` or ``COMPLAINED``. The address's hash goes on
    the suppression list (an ``unsubscribed`` or ``manual`` entry is upgraded, a complaint
    outranks a bounce, an ``erased`` one is kept); a subscriber with that address is marked
    bounced or complained (unless already so); a ``bounce``/``complaint`` consent event records
    it, with ``detail``. Runs in its own transaction (or the caller's). Returns True when the
    suppression list changed. Raises ValueError for any other reason.
    """
    if reason not in FEEDBACK_STATUS:
        raise ValueError(f"{reason!r} is not a feedback reason (bounced or complained).")
    hashed = email_hash(email)
    with transaction.atomic():
        suppression, created = Suppression.objects.select_for_update().get_or_create(
            email_hash=hashed, defaults={"reason": reason, "note": note[:500]}
        )
        changed = created
        if not created and suppression.reason in FEEDBACK_UPGRADES[reason]:
            suppression.reason = reason
            suppression.note = note[:500]
            suppression.save(update_fields=["reason", "note"])
            changed = True
        subscriber = Subscriber.objects.select_for_update().by_email(normalize_email(email)).first()
        status = FEEDBACK_STATUS[reason]
        if subscriber is not None and subscriber.status not in (
            status,
            Subscriber.Status.COMPLAINED,
        ):
            subscriber.status = status
            subscriber.save(update_fields=["status", "updated_at"])
        log_consent(
            FEEDBACK_ACTION[reason],
            origin,
            subscriber=subscriber,
            hashed=hashed,
            detail={"suppression": suppression.reason, **(detail or {})},
        )
    logger.info(
        "subscribers: %s feedback for subscriber %s via %s (suppression %s)",
        reason,
        subscriber.pk if subscriber else None,
        origin.via,
        "added" if changed else "kept",
    )
    return changed


def erase_subscriber(subscriber: Subscriber, origin: Origin) -> str:
    """Delete everything stored about a subscriber; keep only the address's hash as a suppression.

    Deletes the subscriber, their subscriptions, their consent events and their history rows,
    then logs one ``erase`` event holding the hash alone. An import can never add the address
    again; a new sign-up with a new confirmation can. Returns the hash.
    """
    hashed = subscriber.email_hash
    subscriber_id = subscriber.pk
    with transaction.atomic():
        suppression, created = Suppression.objects.get_or_create(
            email_hash=hashed, defaults={"reason": Suppression.Reason.ERASED}
        )
        if not created and suppression.reason == Suppression.Reason.UNSUBSCRIBED:
            suppression.reason = Suppression.Reason.ERASED
            suppression.save(update_fields=["reason"])
        ConsentEvent.objects.filter(subscriber_id=subscriber_id).delete()
        ConsentEvent.objects.filter(email_hash=hashed).delete()
        Subscription.history.filter(subscriber_id=subscriber_id).delete()
        Subscriber.history.filter(id=subscriber_id).delete()
        subscriber_erased.send(
            sender=Subscriber,
            email=subscriber.email,
            email_hash=hashed,
            subscriber_id=subscriber_id,
        )
        subscriber.delete()
        # The delete above wrote "deleted" history rows holding the address: remove them too.
        Subscription.history.filter(subscriber_id=subscriber_id).delete()
        Subscriber.history.filter(id=subscriber_id).delete()
        ConsentEvent.objects.create(
            subscriber=None,
            email_hash=hashed,
            action=ConsentEvent.Action.ERASE,
            detail={"via": origin.via},
        )
        # Their past events lose their id; this last one carries it, so that integrators
        # can erase the person on their side too (decision 0084).
        recorder.scrub_subscriber(subscriber_id)
        recorder.record(EventType.SUBSCRIBER_ERASED, {"subscriber_id": subscriber_id})
    logger.info("subscribers: subscriber %s erased", subscriber_id)
    return hashed
