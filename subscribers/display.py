"""What the preference center shows of a subscriber's data: the same facts as the JSON download
(``queries.export_subscriber_data``), in words and in the subscriber's own time zone and
language, for a person rather than a program.

Codes become words ("active" is shown as "Active", "en" as "English", "immediate" as
"Immediately"); dates and times are formatted by Django's locale formats in the active language
(the view activates the subscriber's), in the subscriber's time zone (``Subscriber.timezone``,
set from the browser at sign-up, UTC at worst). Decision 0075.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo

from django.conf import settings
from django.utils import formats, timezone, translation
from django.utils.dates import WEEKDAYS
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from subscribers.models import ConsentEvent, DigestTime, Subscriber, Subscription

STATUS_WORDS: dict[str, Promise] = {
    Subscriber.Status.PENDING: _("Waiting for your confirmation"),
    Subscriber.Status.ACTIVE: _("Active"),
    Subscriber.Status.UNSUBSCRIBED: _("Unsubscribed"),
    Subscriber.Status.BOUNCED: _("Stopped: emails to this address bounced"),
    Subscriber.Status.COMPLAINED: _("Stopped: an email was reported as spam"),
}
FREQUENCY_WORDS: dict[str, Promise] = {
    Subscription.Frequency.IMMEDIATE: _("Immediately"),
    Subscription.Frequency.DAILY: _("Daily digest"),
    Subscription.Frequency.WEEKLY: _("Weekly digest"),
    Subscription.Frequency.PAUSED: _("Paused"),
}
FORMAT_WORDS: dict[str, Promise] = {
    Subscriber.EmailFormat.HTML: _("HTML with a plain-text alternative"),
    Subscriber.EmailFormat.TEXT: _("Plain text only"),
}
ACTION_WORDS: dict[str, Promise] = {
    ConsentEvent.Action.SIGNUP: _("Signed up"),
    ConsentEvent.Action.CONFIRM: _("Confirmed"),
    ConsentEvent.Action.PREFERENCES: _("Changed preferences"),
    ConsentEvent.Action.UNSUBSCRIBE: _("Unsubscribed"),
    ConsentEvent.Action.RESUBSCRIBE: _("Subscribed again"),
    ConsentEvent.Action.IMPORT: _("Imported with consent"),
    ConsentEvent.Action.ERASE: _("Erased"),
    ConsentEvent.Action.BOUNCE: _("An email bounced"),
    ConsentEvent.Action.COMPLAINT: _("An email was reported as spam"),
}
#: Where a subscriber came from (``Subscriber.source``); an unknown source is shown as stored.
SOURCE_WORDS: dict[str, Promise] = {
    "page": _("the sign-up form"),
    "signup": _("the sign-up form"),
    "api": _("the website's sign-up service (API)"),
    "admin-import": _("an import by the team, with your earlier consent"),
    "import": _("an import by the team, with your earlier consent"),
    "admin": _("the team"),
}
#: How a consent event was made (``ConsentEvent.detail["via"]``).
VIA_WORDS: dict[str, Promise] = {
    "page": _("on this website"),
    "preferences": _("on this page"),
    "api": _("through the website's sign-up service"),
    "admin": _("by the team"),
    "one-click": _("with your mail program's unsubscribe button"),
    "unsubscribe-page": _("on the unsubscribe page"),
}


def words(table: dict[str, Promise], code: str) -> str:
    """The words for ``code`` in the active language; the code itself when none are known."""
    label = table.get(code)
    return str(label) if label is not None else code


def language_name(code: str) -> str:
    """ "English", "French"... in the active language ("Anglais" when it is French)."""
    try:
        return str(translation.get_language_info(code)["name_translated"])
    except KeyError:
        return code


def zone_of(subscriber: Subscriber) -> tzinfo:
    """The subscriber's time zone; the site's (TIME_ZONE) if the stored name is unknown."""
    try:
        return zoneinfo.ZoneInfo(subscriber.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()


def when(value: datetime | None, zone: tzinfo) -> str:
    """A moment as the subscriber reads it: "Dec. 5, 2026, 2:03 p.m." (en), in ``zone``."""
    if value is None:
        return ""
    return formats.date_format(timezone.localtime(value, zone), "DATETIME_FORMAT")


def day(value: date | None) -> str:
    """A calendar day in the active language's format: "Dec. 5, 2026" (en), "5 décembre 2026"."""
    return formats.date_format(value, "DATE_FORMAT") if value is not None else ""


def hour_words(hour: int) -> str:
    """A local hour as a clock shows it: "07:00"."""
    return f"{hour:02d}:00"


def digest_time_words(subscriber: Subscriber) -> str:
    """When their digests go, and why, in the active language (decision 0081): "We send your
    digests at 07:00 (Europe/Paris), when you usually read our emails." """
    chosen = subscriber.digest_time()
    values = {"hour": hour_words(chosen.hour), "zone": subscriber.timezone}
    if chosen.reason == DigestTime.Reason.CHOSEN:
        text = _("We send your digests at %(hour)s (%(zone)s), the hour you chose.") % values
    elif chosen.reason == DigestTime.Reason.LEARNED:
        text = (
            _("We send your digests at %(hour)s (%(zone)s), when you usually read our emails.")
            % values
        )
    elif subscriber.tracking_opt_out:
        text = (
            _(
                "We send your digests at %(hour)s (%(zone)s). You asked us not to count opens "
                "and clicks, so we do not learn when you usually read: choose an hour if you "
                "prefer another."
            )
            % values
        )
    else:
        text = (
            _(
                "We send your digests at %(hour)s (%(zone)s). Once you have read a few of our "
                "emails, we send them at the hour you usually read."
            )
            % values
        )
    weekly = _("Weekly digests go out every %(weekday)s.") % {
        "weekday": WEEKDAYS[settings.DIGEST_WEEKDAY]
    }
    return f"{text} {weekly}"


@dataclass(frozen=True)
class SubscriptionLine:
    topic: str
    frequency: str
    paused_until: str


@dataclass(frozen=True)
class EventLine:
    at: str
    action: str
    via: str
    form_version: str
    network: str


TRACKING_OFF = _("Off: you opted out")
TRACKING_ON = _("On where a channel counts them")


@dataclass(frozen=True)
class StoredData:
    """Everything the preference center's "What we store about you" lists, ready to print."""

    email: str
    name: str
    status: str
    language: str
    timezone: str
    digest_hour: str
    read_hour: str
    email_format: str
    tracking: str
    signed_up: str
    source: str
    confirmed: str
    unsubscribed: str
    subscriptions: list[SubscriptionLine] = field(default_factory=list)
    events: list[EventLine] = field(default_factory=list)


def stored_data(subscriber: Subscriber) -> StoredData:
    """The subscriber's data in words, dates in their zone, for the active language."""
    zone = zone_of(subscriber)
    subscriptions = [
        SubscriptionLine(
            topic=subscription.topic.name,
            frequency=words(FREQUENCY_WORDS, subscription.frequency),
            paused_until=day(subscription.paused_until),
        )
        for subscription in subscriber.subscriptions.select_related("topic").order_by("topic__name")
    ]
    events = [
        EventLine(
            at=when(event.created_at, zone),
            action=words(ACTION_WORDS, event.action),
            via=words(VIA_WORDS, str((event.detail or {}).get("via", ""))),
            form_version=event.form_version,
            network=event.ip_address or "",
        )
        for event in ConsentEvent.objects.filter(email_hash=subscriber.email_hash).order_by(
            "created_at", "pk"
        )
    ]
    return StoredData(
        email=subscriber.email,
        name=subscriber.name,
        status=words(STATUS_WORDS, subscriber.status),
        language=language_name(subscriber.locale),
        timezone=subscriber.timezone,
        digest_hour=(
            hour_words(subscriber.digest_hour)
            if subscriber.digest_hour is not None
            else str(_("Not chosen: we pick it"))
        ),
        read_hour=hour_words(subscriber.read_hour) if subscriber.read_hour is not None else "",
        email_format=words(FORMAT_WORDS, subscriber.email_format),
        tracking=str(
            _("Off: you opted out")
            if subscriber.tracking_opt_out
            else _("On where a channel counts them")
        ),
        signed_up=when(subscriber.created_at, zone),
        source=words(SOURCE_WORDS, subscriber.source),
        confirmed=when(subscriber.confirmed_at, zone),
        unsubscribed=when(subscriber.unsubscribed_at, zone),
        subscriptions=subscriptions,
        events=events,
    )
