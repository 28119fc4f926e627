"""Every write of the subscribers app: sign-up, confirmation, preferences, unsubscribe, erasure,
import and export. Pages, the API, the admin and the commands call these and nothing else.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone, translation

from publishing.models import Topic
from subscribers import tokens
from subscribers.exceptions import InvalidLinkError
from subscribers.imports import ImportOptions, ImportReport, export_subscribers, import_subscribers
from subscribers.models import (
    ConsentEvent,
    Subscriber,
    Subscription,
    Suppression,
    email_hash,
    normalize_email,
)
from subscribers.signals import subscriber_erased

logger = logging.getLogger(__name__)

__all__ = [
    "ImportOptions",
    "ImportReport",
    "Origin",
    "SignupOutcome",
    "access_subscriber",
    "confirm_subscription",
    "erase_subscriber",
    "export_subscriber_data",
    "export_subscribers",
    "import_subscribers",
    "record_feedback_suppression",
    "resubscribe",
    "sign_up",
    "suppress_email",
    "truncate_ip",
    "unsubscribe",
    "update_preferences",
]

USER_AGENT_MAX_LENGTH = 500
# Suppressions that a person's own new, confirmed consent does not lift by a mere sign-up email:
# we send nothing to these, to protect the sending reputation (decision 0022).
NO_MAIL_REASONS = frozenset({Suppression.Reason.BOUNCED, Suppression.Reason.COMPLAINED})


def truncate_ip(value: str | None) -> str | None:
    """An IPv4 address cut to its /24, an IPv6 address to its /48; None when absent or malformed."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def client_ip(request: HttpRequest) -> str | None:
    """The client address as the rate limits see it (RATELIMIT_IP_META_KEY behind a proxy)."""
    key = settings.RATELIMIT_IP_META_KEY or "REMOTE_ADDR"
    value = request.META.get(key, "")
    return value.split(",")[0].strip() or None


@dataclass(frozen=True)
class Origin:
    """Where an action came from, as the consent log records it."""

    via: str
    form_version: str = ""
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, via: str, form_version: str = "") -> Origin:
        return cls(
            via=via,
            form_version=form_version,
            ip_address=truncate_ip(client_ip(request)),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH],
        )


def _log(
    action: str,
    origin: Origin,
    *,
    subscriber: Subscriber | None,
    hashed: str,
    detail: dict[str, Any] | None = None,
) -> ConsentEvent:
    return ConsentEvent.objects.create(
        subscriber=subscriber,
        email_hash=hashed,
        action=action,
        form_version=origin.form_version,
        ip_address=origin.ip_address,
        user_agent=origin.user_agent,
        detail={"via": origin.via, **(detail or {})},
    )


# --- Links ------------------------------------------------------------------------------------


def access_subscriber(token: str, *, for_update: bool = False) -> Subscriber:
    """The subscriber a preference-center or unsubscribe token names.

    Raises InvalidLinkError when the token is forged or altered, or names a subscriber who no
    longer exists or whose token_key was rotated. With ``for_update`` the row is locked (the
    caller must be inside a transaction).
    """
    try:
        claims = tokens.read_manage_token(token)
    except tokens.TokenError as exc:
        raise InvalidLinkError("This link is not valid.", code="invalid_link") from exc
    queryset = Subscriber.objects.select_for_update() if for_update else Subscriber.objects.all()
    subscriber = queryset.filter(pk=claims.subscriber_id, token_key=claims.token_key).first()
    if subscriber is None:
        raise InvalidLinkError("This link is no longer valid.", code="invalid_link")
    return subscriber


def is_forgotten(token: str) -> bool:
    """True when an authentic manage token names a subscriber who no longer exists (erased)."""
    try:
        claims = tokens.read_manage_token(token)
    except tokens.TokenError:
        return False
    return not Subscriber.objects.filter(pk=claims.subscriber_id).exists()


def manage_token_for(subscriber: Subscriber) -> str:
    return tokens.manage_token(subscriber.pk, subscriber.token_key)


# --- Mail -------------------------------------------------------------------------------------


def _send_mail(subscriber_id: int, template: str, context_extra: dict[str, Any]) -> None:
    """Render ``templates/subscribers/email/<template>.*`` in the subscriber's language and send it.

    Runs after commit, so a rolled-back sign-up sends nothing.
    """
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return
    token = manage_token_for(subscriber)
    context = {
        "subscriber": subscriber,
        "site_name": settings.SITE_NAME,
        "preferences_url": tokens.preferences_url(token),
        **context_extra,
    }
    with translation.override(subscriber.locale):
        subject = render_to_string(f"subscribers/email/{template}_subject.txt", context)
        text = render_to_string(f"subscribers/email/{template}.txt", context)
        html = render_to_string(f"subscribers/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        # Transactional mail the person asked for: lets the mail backend tell it from bulk mail.
        headers={"Auto-Submitted": "auto-generated", "X-Publishing-Kind": "transactional"},
    )
    message.attach_alternative(html, "text/html")
    message.send()
    logger.info("subscribers: sent %s email to subscriber %s", template, subscriber_id)


def _send_on_commit(subscriber_id: int, template: str, **context: Any) -> None:
    transaction.on_commit(lambda: _send_mail(subscriber_id, template, context), robust=True)


def _emails_sent_today(hashed: str, now: datetime) -> int:
    return ConsentEvent.objects.filter(
        email_hash=hashed,
        action=ConsentEvent.Action.SIGNUP,
        created_at__gte=now - timedelta(days=1),
        detail__email_sent=True,
    ).count()


# --- Sign-up and confirmation -----------------------------------------------------------------


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

        reason = ""
        if no_mail:
            reason = "suppressed"
        elif _emails_sent_today(hashed, now) >= settings.SUBSCRIBERS_SIGNUP_EMAILS_PER_DAY:
            reason = "daily_limit"
        sent = template if not reason else "none"
        _log(
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
            _send_on_commit(subscriber.pk, template, **extra)
    logger.info(
        "subscribers: sign-up for subscriber %s (created=%s, email=%s, reason=%s)",
        subscriber.pk,
        created,
        sent,
        reason,
    )
    return SignupOutcome(subscriber_id=subscriber.pk, email=sent, reason=reason)


def read_confirmation(token: str) -> Subscriber:
    """The subscriber a confirmation token names; InvalidLinkError when it is unusable."""
    try:
        claims = tokens.read_confirmation_token(token)
    except tokens.TokenError as exc:
        code = "expired_link" if exc.reason == "expired" else "invalid_link"
        raise InvalidLinkError("This confirmation link cannot be used.", code=code) from exc
    subscriber = Subscriber.objects.filter(
        pk=claims.subscriber_id, token_key=claims.token_key
    ).first()
    if subscriber is None:
        raise InvalidLinkError("This confirmation link is no longer valid.", code="invalid_link")
    return subscriber


def confirm_subscription(token: str, origin: Origin) -> tuple[Subscriber, bool]:
    """Activate the subscriber a confirmation token names and log their consent.

    Returns (subscriber, changed); confirming twice changes nothing the second time. Lifts the
    address's suppression: the person has just proved they want this mail. Raises
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
        _log(
            ConsentEvent.Action.CONFIRM,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
            detail={"topics": _topic_slugs(subscriber)},
        )
    logger.info("subscribers: subscriber %s confirmed", subscriber.pk)
    return subscriber, True


# --- Preferences ------------------------------------------------------------------------------


def _topic_slugs(subscriber: Subscriber) -> list[str]:
    return sorted(subscriber.subscriptions.values_list("topic__slug", flat=True))


def _replace_topics(subscriber: Subscriber, topics: Iterable[Topic], frequency: str) -> None:
    wanted = {topic.pk for topic in topics}
    subscriber.subscriptions.exclude(topic_id__in=wanted).delete()
    have = set(subscriber.subscriptions.values_list("topic_id", flat=True))
    for topic_id in sorted(wanted - have):
        Subscription.objects.create(subscriber=subscriber, topic_id=topic_id, frequency=frequency)


def current_frequency(subscriber: Subscriber, today: date) -> tuple[str, date | None]:
    """The frequency the preference center shows: "paused" while a pause date is ahead."""
    subscription = subscriber.subscriptions.order_by("pk").first()
    if subscription is None:
        return Subscription.Frequency.IMMEDIATE, None
    if subscription.paused_until is not None and subscription.paused_until > today:
        return Subscription.Frequency.PAUSED, subscription.paused_until
    return subscription.frequency, None


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
) -> Subscriber:
    """Apply the preference center's choices to every subscription and log the change.

    Frequency "paused" with a date keeps the frequency the subscriber had and sets
    ``paused_until``, so delivery resumes by itself that day; "paused" without a date is paused
    until changed (decision 0023). Input is already validated by the form.
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
        for attribute, value in (("name", name), ("locale", locale), ("timezone", time_zone)):
            if value is not None:
                setattr(subscriber, attribute, value)
                fields.append(attribute)
        subscriber.save(update_fields=fields)
        _log(
            ConsentEvent.Action.PREFERENCES,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
            detail={
                "topics": sorted(topic.slug for topic in topics),
                "frequency": frequency,
                "paused_until": paused_until.isoformat() if paused_until else None,
                "email_format": email_format,
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
        _log(
            ConsentEvent.Action.UNSUBSCRIBE,
            origin,
            subscriber=subscriber,
            hashed=subscriber.email_hash,
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
        _log(
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
        _log(
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
        subscriber_erased.send(sender=Subscriber, email=subscriber.email, email_hash=hashed)
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
    logger.info("subscribers: subscriber %s erased", subscriber_id)
    return hashed


# --- What we store ----------------------------------------------------------------------------


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
    }


@dataclass
class SubscriberStatus:
    """What ``subscriber_status`` reports about one address."""

    email_hash: str
    subscriber: Subscriber | None
    suppression: Suppression | None
    topics: list[str] = field(default_factory=list)


def subscriber_status(email: str) -> SubscriberStatus:
    hashed = email_hash(email)
    subscriber = Subscriber.objects.by_email(normalize_email(email)).first()
    return SubscriberStatus(
        email_hash=hashed,
        subscriber=subscriber,
        suppression=Suppression.objects.filter(email_hash=hashed).first(),
        topics=_topic_slugs(subscriber) if subscriber else [],
    )
