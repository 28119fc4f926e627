"""Daily and weekly digests: who gets one, what it lists, and how it reaches the engine.

Decisions 0025 and 0081. A subscriber's digest period ends at their hour in their time zone
every day, or on ``DIGEST_WEEKDAY`` for weekly digests (channels.digest_schedule); the schedule
runs every quarter of an hour and writes the digests whose period has ended. For each reachable
subscriber with an unpaused subscription of that frequency, one transaction locks the
subscriber row, writes a ``Digest`` (unique per subscriber, frequency and period end) and the
``Delivery`` that carries its complete message (kind ``digest``, on the default email channel);
the engine then sends it like any other row, so suppression, retries, the rate limit, the
circuit breaker and the sent journal apply. A run killed midway rolls back the subscriber it was
writing; a second or concurrent run finds each period already taken. A digest's period starts
where the subscriber's previous one of that frequency ended, so a publication is listed once
and none is skipped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from html import escape
from typing import Any

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Subquery
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django_q.tasks import async_task

from channels import personalization, tracking
from channels.backends.email_common import crlf_bytes
from channels.digest_languages import in_language
from channels.digest_schedule import Timing, due_end, is_next_end, latest_end
from channels.engine.queue import enqueue_due_batches
from channels.exceptions import DigestError
from channels.models import Channel, Delivery, Digest
from config.mail import message_id_domain
from publishing.models import Dispatch, Publication
from publishing.ranking import Reason
from subscribers.models import (
    Subscriber,
    SubscriberQuerySet,
    Subscription,
    digest_time,
    zone_named,
)
from subscribers.tokens import (
    FEEDBACK_CHOICES,
    feedback_token,
    feedback_url,
    list_unsubscribe_headers,
    manage_token,
    preferences_url,
    unsubscribe_token,
    unsubscribe_url,
)

logger = logging.getLogger(__name__)

SEND_DIGESTS_TASK = "channels.tasks.send_digests"
FREQUENCIES: tuple[str, ...] = (Digest.Frequency.DAILY, Digest.Frequency.WEEKLY)
#: How far back a first digest looks (no previous digest of that frequency).
PERIOD: dict[str, timedelta] = {
    Digest.Frequency.DAILY: timedelta(days=1),
    Digest.Frequency.WEEKLY: timedelta(weeks=1),
}
#: The furthest back any digest looks, however old the previous one: after a pause, a change of
#: topics or frequency, or a long outage of the workers, a digest is not a months-long backlog.
MAX_LOOKBACK: dict[str, timedelta] = {
    Digest.Frequency.DAILY: timedelta(days=7),
    Digest.Frequency.WEEKLY: timedelta(weeks=4),
}

#: How far back a run reads publications: a period ends at most a period (plus an hour of DST)
#: before the run and starts at most MAX_LOOKBACK before its end.
ITEMS_WINDOW: dict[str, timedelta] = {
    frequency: MAX_LOOKBACK[frequency] + PERIOD[frequency] + timedelta(hours=2)
    for frequency in FREQUENCIES
}

_inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)


@dataclass(frozen=True)
class DigestItem:
    """A publication first published in the lookback window, as a digest lists it."""

    publication_id: int
    title: str
    summary: str
    url: str
    published_at: datetime
    topic_ids: frozenset[int]
    #: Why the item is where it is in this reader's digest (channels.personalization).
    reason: Reason | None = None
    #: The reader's "more like this" / "less like this" links (filled by build_digest_email).
    more_url: str = ""
    less_url: str = ""


@dataclass(frozen=True)
class DuePeriod:
    """A subscriber whose period of some frequency has ended without its digest."""

    subscriber_id: int
    end: datetime


@dataclass
class DigestReport:
    """What one run did for one frequency, for logs, the command and tests."""

    frequency: str
    #: The time the run looked from: each subscriber's period is the latest one ended by then.
    now: datetime
    candidates: int = 0
    created: int = 0
    #: False when the run stopped at its deadline with subscribers left (the next run goes on).
    finished: bool = True


def check_frequency(frequency: str) -> str:
    """Return ``frequency`` if digests exist for it; raise DigestError otherwise."""
    if frequency not in FREQUENCIES:
        raise DigestError(
            f"Unknown digest frequency {frequency!r}: choose one of {', '.join(FREQUENCIES)}."
        )
    return frequency


def timing_of(subscriber: Subscriber) -> Timing:
    """The zone and local hour that end ``subscriber``'s periods (Subscriber.digest_time)."""
    return Timing(zone=subscriber.zone, hour=subscriber.digest_time().hour)


def period_end(frequency: str, now: datetime, subscriber: Subscriber | None = None) -> datetime:
    """The end of the latest period of ``frequency`` ended at ``now``, in UTC, for
    ``subscriber`` (their hour in their zone), or for a subscriber in UTC with no hour of
    their own (DIGEST_HOUR). Weekly: the latest such end on DIGEST_WEEKDAY."""
    check_frequency(frequency)
    if subscriber is None:
        subscriber = Subscriber(timezone="UTC")
    return latest_end(frequency, timing_of(subscriber), now)


def published_between(start: datetime, end: datetime) -> list[DigestItem]:
    """Publications first published (their ``publish`` dispatch) in [start, end) and still
    published, newest first, with their current title, summary and topics. Two queries."""
    dispatches = (
        Dispatch.objects.filter(
            kind=Dispatch.Kind.PUBLISH,
            created_at__gte=start,
            created_at__lt=end,
            publication__status=Publication.Status.PUBLISHED,
        )
        .select_related("publication")
        .only("created_at", "publication__title", "publication__slug", "publication__summary")
        .order_by("-created_at", "-pk")
    )
    rows = list(dispatches)
    topics: dict[int, set[int]] = {}
    for publication_id, topic_id in Publication.topics.through.objects.filter(
        publication_id__in=[row.publication_id for row in rows]
    ).values_list("publication_id", "topic_id"):
        topics.setdefault(publication_id, set()).add(topic_id)
    return [
        DigestItem(
            publication_id=row.publication_id,
            title=row.publication.title,
            summary=row.publication.summary,
            url=settings.SITE_URL + row.publication.get_absolute_url(),
            published_at=row.created_at,
            topic_ids=frozenset(topics.get(row.publication_id, ())),
        )
        for row in rows
    ]


def _candidates(frequency: str, today: date, topic_ids: Iterable[int]) -> SubscriberQuerySet:
    """Reachable subscribers with a ``frequency`` subscription to one of ``topic_ids`` that is
    not paused on ``today`` or the day after (the day the period ends is a local day; the exact
    rule is applied under the lock, in create_digest)."""
    subscriptions = (
        Subscription.objects.receiving_digest(frequency, today + timedelta(days=1))
        .filter(subscriber_id=OuterRef("pk"), topic_id__in=list(topic_ids))
        .values("pk")
    )
    return Subscriber.objects.reachable().filter(Exists(subscriptions))


def due_periods(frequency: str, now: datetime, topic_ids: Iterable[int]) -> list[DuePeriod]:
    """The candidates (see _candidates) whose latest period of ``frequency`` ended at ``now``
    has no digest yet, with that period's end (channels.digest_schedule.due_end), in id order.

    One query: each candidate with their zone, hours and the end of their previous digest of
    that frequency; the local times are computed here (zoneinfo), not in SQL.
    """
    previous = (
        Digest.objects.filter(subscriber_id=OuterRef("pk"), frequency=frequency)
        .values("subscriber_id")
        .annotate(last=Max("period_end"))
        .values("last")
    )
    rows = (
        _candidates(frequency, now.date(), topic_ids)
        .annotate(previous_end=Subquery(previous))
        .order_by("pk")
        .values_list(
            "pk", "timezone", "digest_hour", "read_hour", "tracking_opt_out", "previous_end"
        )
    )
    due: list[DuePeriod] = []
    for pk, zone, digest_hour, read_hour, opted_out, previous_end in rows:
        timing = Timing(zone_named(zone), digest_time(digest_hour, read_hour, opted_out).hour)
        end = due_end(frequency, timing, now, previous_end)
        if end is not None:
            due.append(DuePeriod(pk, end))
    return due


def due_subscriber_ids(frequency: str, now: datetime, topic_ids: Iterable[int]) -> list[int]:
    """The ids of due_periods: who has a digest of ``frequency`` due at ``now``."""
    return [period.subscriber_id for period in due_periods(frequency, now, topic_ids)]


def build_digest_email(
    subscriber: Subscriber,
    frequency: str,
    items: Sequence[DigestItem],
    *,
    delivery_id: int,
    from_email: str,
    track: tracking.TrackingSigner | None = None,
) -> tuple[bytes, list[str]]:
    """The complete message (CRLF bytes) of a digest, in the subscriber's language, and the
    targets of its tracked links (empty when untracked).

    HTML and text parts (text only for subscribers who chose it), the subscriber's links, and
    the headers the engine's bulk email carries: ``Message-ID: <delivery-ID@domain>``,
    ``X-Delivery-ID``, ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (RFC 8058). With
    ``track`` (the channel tracks and the subscriber did not opt out) the HTML part's links
    become click URLs of this delivery and it carries the open pixel (decision 0078).
    """
    token = manage_token(subscriber.pk, subscriber.token_key)
    # The unsubscribe link and List-Unsubscribe carry the unsubscribe-only token (decision 0072).
    unsubscribe = unsubscribe_token(subscriber.pk, subscriber.token_key)
    items = [_with_feedback_links(subscriber, item) for item in items]
    context: dict[str, Any] = {
        "name": subscriber.name.strip(),
        "frequency": frequency,
        "items": items,
        "count": len(items),
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
        "preferences_url": preferences_url(token),
        "unsubscribe_url": unsubscribe_url(unsubscribe),
        "language": subscriber.locale,
    }
    with translation.override(subscriber.locale):
        subject = render_to_string("channels/digest/subject.txt", context)
        text = render_to_string("channels/digest/email.txt", context)
        html: str | None = None
        if subscriber.email_format == Subscriber.EmailFormat.HTML:
            html = str(render_to_string("channels/digest/email.html", context))
    message_id = f"delivery-{delivery_id}@{message_id_domain()}"
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),
        body=text.strip() + "\n",
        from_email=from_email,
        to=[subscriber.email],
        headers={
            "Message-ID": f"<{message_id}>",
            "X-Delivery-ID": str(delivery_id),
            **list_unsubscribe_headers(unsubscribe),
        },
    )
    links: list[str] = []
    if html is not None:
        html = _inliner.inline(html)
        if track is not None:
            own = (
                context["preferences_url"],
                context["unsubscribe_url"],
                *(url for item in items for url in (item.more_url, item.less_url)),
            )
            tracked = tracking.track_html(html, keep=[*own, *(escape(url) for url in own)])
            links = list(tracked.links)
            html = tracked.html
            for placeholder, value in tracking.tracking_values(
                delivery_id, tracking.DIGEST_LINKS, len(links), track
            ).items():
                html = html.replace(placeholder, escape(value))
        message.attach_alternative(html, "text/html")
    return crlf_bytes(message), links


def _with_feedback_links(subscriber: Subscriber, item: DigestItem) -> DigestItem:
    """``item`` with the subscriber's feedback links to it (never tracked: decision 0080)."""
    token = feedback_token(subscriber.pk, subscriber.token_key, item.publication_id)
    more, less = (feedback_url(token, choice) for choice in FEEDBACK_CHOICES)
    return replace(item, more_url=more, less_url=less)


def create_digest(
    subscriber_id: int,
    frequency: str,
    end: datetime,
    items: Sequence[DigestItem],
    channel: Channel,
) -> Digest | None:
    """Write one subscriber's digest of the period ending at ``end``, and its delivery.

    One transaction: the subscriber row is locked (``SELECT ... FOR UPDATE SKIP LOCKED``), so a
    run meeting a subscriber another run is writing passes on to the next one instead of
    waiting behind it: two runs split the subscribers between them rather than one trailing the
    other (a subscriber skipped because their row was busy is written by the next run, a
    quarter of an hour later, as their period is still the latest); the unique constraint on
    (subscriber, frequency, period_end) is the last word. Under the lock ``end``
    must still be the subscriber's next period end for their current zone and hour
    (digest_schedule.is_next_end): a change of settings since ``end`` was computed, or a
    digest of that day already written, writes nothing. ``items`` are the candidates of the
    whole lookback window (published_between), newest first. Returns None, writing nothing,
    when the subscriber is no longer reachable, already has this period's digest, or has
    nothing to read (nothing published on their topics since their last one).
    """
    try:
        with transaction.atomic():
            subscriber = (
                Subscriber.objects.reachable()
                .select_for_update(skip_locked=True)
                .filter(pk=subscriber_id)
                .first()
            )
            if subscriber is None:
                return None
            digests = Digest.objects.filter(subscriber=subscriber, frequency=frequency)
            previous = digests.order_by("-period_end").values_list("period_end", flat=True).first()
            timing = timing_of(subscriber)
            if not is_next_end(frequency, timing, end, previous):
                return None
            start = max(previous or end - PERIOD[frequency], end - MAX_LOOKBACK[frequency])
            topic_ids = set(
                # Paused or not on the local day the period ends.
                Subscription.objects.receiving_digest(frequency, end.astimezone(timing.zone).date())
                .filter(subscriber=subscriber)
                .values_list("topic_id", flat=True)
            )
            listed = [
                item
                for item in items
                if start <= item.published_at < end and item.topic_ids & topic_ids
            ]
            if not listed:
                return None
            # In the reader's language where a translation exists (decision 0082), ordered by
            # the reader's interest, each with its reason (decision 0080).
            listed = in_language(listed, subscriber.locale)
            listed = personalization.rank_digest_items(subscriber.pk, listed, topic_ids, end)
            now = timezone.now()
            delivery = Delivery.objects.create(
                kind=Delivery.Kind.DIGEST,
                channel=channel,
                subscriber=subscriber,
                recipient=subscriber.email,
                priority=Delivery.PRIORITY_BULK,
                next_attempt_at=now,
            )
            # The Message-ID and tracked links name the delivery, so the bytes are built once
            # its id exists.
            track = (
                tracking.signer() if channel.tracking and not subscriber.tracking_opt_out else None
            )
            delivery.raw_message, links = build_digest_email(
                subscriber,
                frequency,
                listed,
                delivery_id=delivery.pk,
                from_email=str(channel.config.get("from_email") or settings.DEFAULT_FROM_EMAIL),
                track=track,
            )
            delivery.save(update_fields=["raw_message"])
            digest = Digest.objects.create(
                subscriber=subscriber,
                frequency=frequency,
                period_start=start,
                period_end=end,
                delivery=delivery,
                links=links,
            )
            digest.publications.set([item.publication_id for item in listed])
    except IntegrityError:
        # Another run wrote this period between our check and our insert.
        logger.info("Digest of subscriber %s to %s already written", subscriber_id, end)
        return None
    return digest


def send_digests(
    now: datetime | None = None,
    *,
    frequencies: Sequence[str] = FREQUENCIES,
    deadline: float | None = None,
) -> list[DigestReport]:
    """Write every digest due at ``now`` (default: the current time) and enqueue their sending.

    For each frequency and subscriber, the period is their latest one ended at ``now``, at
    their hour in their zone (due_periods). Idempotent and safe to run concurrently: see
    create_digest. ``deadline`` (a time.monotonic() value) stops the run between subscribers;
    the rest is done by the next run. Raises DigestError for an unknown frequency or a ``now``
    in the future. With no enabled email channel nothing is written (the next run, once one
    exists, sends the digests).
    """
    current = timezone.now()
    now = now or current
    if now > current + timedelta(minutes=1):
        raise DigestError(f"Cannot send digests for a time in the future ({now.isoformat()}).")
    for frequency in frequencies:
        check_frequency(frequency)
    channel = Channel.objects.default_email()
    if channel is None:
        logger.warning("No enabled email channel: digests wait for one")
        return []
    reports: list[DigestReport] = []
    for frequency in frequencies:
        report = DigestReport(frequency=frequency, now=now)
        reports.append(report)
        # Every subscriber's period ends within a period (and a DST hour) before ``now``, and
        # starts at most MAX_LOOKBACK before its end.
        items = published_between(now - ITEMS_WINDOW[frequency], now)
        if not items:
            continue
        topic_ids = set().union(*(item.topic_ids for item in items))
        candidates = due_periods(frequency, now, topic_ids)
        report.candidates = len(candidates)
        for due in candidates:
            if deadline is not None and time.monotonic() >= deadline:
                report.finished = False
                break
            if create_digest(due.subscriber_id, frequency, due.end, items, channel) is not None:
                report.created += 1
        logger.info(
            "Digests %s at %s: %s due, %s written",
            frequency,
            now.isoformat(),
            report.candidates,
            report.created,
        )
    if any(report.created for report in reports):
        enqueue_due_batches(channel_id=channel.pk)
    return reports


def send_digests_for_a_while() -> int:
    """The scheduled task's body: send_digests for up to DELIVERY_TASK_SECONDS, then hand the
    rest to a new task. Returns the number of digests written."""
    reports = send_digests(deadline=time.monotonic() + settings.DELIVERY_TASK_SECONDS)
    if not all(report.finished for report in reports):
        async_task(SEND_DIGESTS_TASK)
    return sum(report.created for report in reports)


def forget_digests(sender: object, *, email: str, **kwargs: object) -> int:
    """Receiver of subscribers' ``subscriber_erased``: scrub the digests kept for ``email``.

    A digest delivery keeps the address and the whole message; on erasure both go, and a digest
    not yet sent is cancelled. (The Digest rows go with the subscriber.) Returns how many.
    """
    rows = Delivery.objects.filter(kind=Delivery.Kind.DIGEST, recipient__iexact=email)
    rows.exclude(status__in=Delivery.SETTLED).update(
        status=Delivery.Status.CANCELLED, last_error="recipient erased", lease_expires_at=None
    )
    return rows.update(recipient="", raw_message=None)
