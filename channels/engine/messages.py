"""Messages: each claimed row rendered for its backend, from versions rendered once per process
(decisions 0013 and 0037); rows whose recipient became unreachable are cancelled."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from django.conf import settings

from channels import tracking
from channels.backends.base import (
    Message,
    Outcome,
    OutcomeStatus,
)
from channels.engine.claims import ClaimedRow
from channels.engine.mime import PreparedEmail
from channels.models import Channel, Delivery
from channels.tracking import store_links
from config.mail import message_id_domain
from events.models import Event
from publishing.abtests import subject_for
from publishing.models import Dispatch, Publication, PublicationTranslation
from publishing.rendering import (
    LESS_URL,
    MORE_URL,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    EmailTemplate,
    TranslatedVersion,
    render_email,
    render_for_kind,
)
from subscribers.models import Subscriber, Suppression, email_hash
from subscribers.tokens import (
    SubscriberLinks,
)

logger = logging.getLogger(__name__)


#: Suppression reasons that stop site mail too (a bulk unsubscribe does not stop a confirmation).
SITE_MAIL_SUPPRESSED = (Suppression.Reason.BOUNCED, Suppression.Reason.COMPLAINED)


#: Rendered versions, per worker process. Keyed by the history row's id *and* date, so a
#: reused id (SQLite reuses them after a delete) can never serve another version's text.
_rendered: dict[tuple[Any, ...], Any] = {}

RENDER_CACHE_SIZE = 32


def _cached(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    if key not in _rendered:
        if len(_rendered) >= RENDER_CACHE_SIZE:
            _rendered.clear()
        _rendered[key] = build()
    return _rendered[key]


#: Publication versions (history rows, never changed once written) read by this process, by
#: history id: the batches of one dispatch read their version once, not once per batch.
_versions: dict[int, Any] = {}


def load_versions(rows: Sequence[ClaimedRow]) -> dict[int, Any]:
    """The publication versions the rows need: those this process has not read yet in one
    query, without their bodies (a body is read only when that version is rendered for the
    first time in this process)."""
    ids = {row.version_id for row in rows} - {None}
    missing = ids - _versions.keys()
    if missing:
        if len(_versions) + len(missing) > RENDER_CACHE_SIZE:
            _versions.clear()
        versions = Publication.history.model.objects.filter(history_id__in=missing).defer("body")
        _versions.update((version.history_id, version) for version in versions)
    return {pk: _versions[pk] for pk in ids if pk in _versions}


def load_translations(rows: Sequence[ClaimedRow]) -> dict[tuple[int, str], Any]:
    """(dispatch id, language) -> the translation version the dispatch pinned, for the rows
    that carry a translation (decision 0082); no query when none does. Bodies are deferred as
    in ``load_versions``."""
    wanted = {(row.dispatch_id, row.language) for row in rows if row.language and row.dispatch_id}
    if not wanted:
        return {}
    pins = dict(
        Dispatch.objects.filter(pk__in={dispatch_id for dispatch_id, _ in wanted}).values_list(
            "pk", "translation_versions"
        )
    )
    history_ids = {
        (dispatch_id, language): (pins.get(dispatch_id) or {}).get(language)
        for dispatch_id, language in wanted
    }
    history = PublicationTranslation.history.model.objects.filter(
        history_id__in={value for value in history_ids.values() if value}
    ).defer("body")
    by_id = {row.history_id: row for row in history}
    return {key: by_id[value] for key, value in history_ids.items() if value in by_id}


def _render_key(version: Any) -> tuple[Any, ...]:
    """What identifies a version's rendering in this process: its history row (and date), and
    its translation's when it carries one."""
    if isinstance(version, TranslatedVersion):
        translation = version.translation
        return (*_render_key(version.original), translation.history_id, translation.history_date)
    return (version.history_id, version.history_date)


def link_ref(surface: str, version: Any) -> tracking.LinkRef:
    """The links a tracked message of ``version`` counts its click positions in."""
    if isinstance(version, TranslatedVersion):
        return tracking.LinkRef(
            surface, version.original.history_id, version.translation.history_id
        )
    return tracking.LinkRef(surface, version.history_id)


def _email_template(
    version: Any, from_email: str, tracked: bool = False, variant: int | None = None
) -> PreparedEmail:
    """The version's email prepared once per process and A/B subject; ``tracked``: with its
    links rewritten to click placeholders and the open pixel (the links are stored once, in
    order). ``variant``: the delivery's subject of the version's A/B test (decision 0079); a
    translation's subject is its title (decision 0082)."""
    translated = isinstance(version, TranslatedVersion)
    subject = None if translated else subject_for(version, variant)

    def build() -> PreparedEmail:
        template = render_email(version)
        if subject is not None:
            template = replace(template, subject=subject)
        if not tracked:
            return PreparedEmail.prepare(template, from_email)
        template, links = tracked_email(template)
        ref = link_ref(tracking.EMAIL, version)
        store_links(ref.version_id, ref.stored_surface, links)
        return PreparedEmail.prepare(template, from_email, link_count=len(links))

    key = ("email", *_render_key(version), from_email, tracked, subject)
    prepared: PreparedEmail = _cached(key, build)
    return prepared


def tracked_email(template: EmailTemplate) -> tuple[EmailTemplate, tuple[str, ...]]:
    """``template`` with its http(s) links as click placeholders and the open pixel added; the
    preference, unsubscribe and feedback links stay as they are (never tracked)."""
    keep = (PREFERENCES_URL, UNSUBSCRIBE_URL, MORE_URL, LESS_URL)
    tracked = tracking.track_html(template.html, keep=keep)
    anonymous = template.anonymous_html
    if anonymous is not None:
        anonymous = tracking.track_html(anonymous, keep=keep).html
    return replace(template, html=tracked.html, anonymous_html=anonymous), tracked.links


def _broadcast_payload(version: Any, kind: str) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        payload = render_for_kind(version, kind)
        if isinstance(payload, EmailTemplate):
            return {"subject": payload.subject, "text": payload.text}
        return payload

    result: dict[str, Any] = _cached((kind, version.history_id, version.history_date), build)
    return result


def _tracked_broadcast(
    row: ClaimedRow, version: Any, kind: str, sign: tracking.TrackingSigner
) -> dict[str, Any]:
    """A broadcast payload whose URLs are click URLs of this delivery; the version's links on
    this surface are stored the first time (the same for every delivery of the version)."""
    ref = tracking.LinkRef(kind, version.history_id)
    payload, links = tracking.track_payload(_broadcast_payload(version, kind), row.pk, ref, sign)

    def stored() -> bool:
        store_links(version.history_id, kind, links)
        return True

    _cached(("links", kind, version.history_id, version.history_date), stored)
    result: dict[str, Any] = payload
    return result


def _reachable(row: ClaimedRow) -> bool:
    """The row's subscriber may still be sent to (``Subscriber.objects.reachable()``, read
    by the claim)."""
    return row.subscriber is not None and row.is_reachable


def _subscriber_message(
    row: ClaimedRow,
    version: Any,
    from_email: str,
    date: str,
    links: SubscriberLinks,
    domain: str,
    sign: tracking.TrackingSigner | None = None,
) -> Message | None:
    """``sign`` is given when the channel tracks: the subscriber's mail is tracked unless they
    opted out."""
    subscriber = row.subscriber
    if subscriber is None or not _reachable(row) or version is None:
        return None
    tracked = sign is not None and not subscriber.tracking_opt_out
    prepared = _email_template(version, from_email, tracked, row.variant)
    values = (
        tracking.tracking_values(
            row.pk, link_ref(tracking.EMAIL, version), prepared.link_count, sign
        )
        if tracked and sign is not None
        else None
    )
    key = str(subscriber.token_key)  # three tokens carry it
    preferences, unsubscribe, list_headers = links.for_subscriber(subscriber.pk, key)
    headers = {"X-Delivery-ID": str(row.pk), **list_headers}
    message_id = f"delivery-{row.pk}@{domain}"
    raw = prepared.build(
        to=subscriber.email,
        message_id=message_id,
        date=date,
        name=subscriber.name,
        preferences_url=preferences,
        unsubscribe_url=unsubscribe,
        headers=headers,
        with_html=subscriber.email_format == Subscriber.EmailFormat.HTML,
        tracking=values,
        feedback=links.feedback_for(subscriber.pk, key, version.id),
    )
    # Email backends send ``raw``; the body is not repeated as text and html strings.
    return Message(
        delivery_id=row.pk,
        to=subscriber.email,
        subject=prepared.template.subject,
        headers={"Message-ID": f"<{message_id}>", **headers},
        raw=raw,
    )


def build_messages(
    channel: Channel, rows: Sequence[ClaimedRow], now: datetime
) -> tuple[list[Message], list[ClaimedRow], list[Outcome]]:
    """Render each claimed row; return (messages to send, rows to cancel, render failures).

    A row is cancelled when its recipient became unreachable after fan-out: unsubscribed,
    bounced, complained, erased or suppressed (site mail: bounced or complained only). A row
    that cannot be rendered fails permanently: rendering again gives the same result.
    """
    from_email = str(channel.config.get("from_email") or settings.DEFAULT_FROM_EMAIL)
    date = format_datetime(now)
    site_mail = [row for row in rows if row.kind == Delivery.Kind.TRANSACTIONAL]
    blocked_hashes: set[str] = set()
    if site_mail:
        hashes = {email_hash(row.recipient) for row in site_mail}
        blocked_hashes = set(
            Suppression.objects.filter(
                email_hash__in=hashes, reason__in=SITE_MAIL_SUPPRESSED
            ).values_list("email_hash", flat=True)
        )
    versions = load_versions(rows)
    translations = load_translations(rows)
    events = load_events(rows)
    links = SubscriberLinks.build()
    sign = tracking.signer() if channel.tracking else None
    domain = message_id_domain()
    messages: list[Message] = []
    cancelled: list[ClaimedRow] = []
    failures: list[Outcome] = []
    for row in rows:
        version = versions.get(row.version_id or 0)
        message: Message | None = None
        try:
            if row.kind == Delivery.Kind.SUBSCRIBER:
                translation = translations.get((row.dispatch_id or 0, row.language))
                if translation is not None and version is not None:
                    version = TranslatedVersion(version, translation)
                message = _subscriber_message(row, version, from_email, date, links, domain, sign)
            elif row.kind == Delivery.Kind.BROADCAST and version is not None:
                payload = (
                    _tracked_broadcast(row, version, channel.kind, sign)
                    if sign is not None and channel.kind in tracking.CLICK_TRACKED_BROADCASTS
                    else _broadcast_payload(version, channel.kind)
                )
                message = Message(delivery_id=row.pk, payload=payload)
            elif (
                row.kind == Delivery.Kind.TRANSACTIONAL
                and row.raw_message is not None
                and email_hash(row.recipient) not in blocked_hashes
            ):
                message = _site_message(row)
            elif row.kind == Delivery.Kind.DIGEST:
                message = _digest_message(row)
            elif row.kind == Delivery.Kind.EVENT:
                message = _event_message(row, events)
        except Exception as error:  # one broken row must not hold the batch
            logger.exception("Delivery %s cannot be rendered", row.pk)
            failures.append(
                Outcome(row.pk, OutcomeStatus.PERMANENT, error=f"Rendering failed: {error!r}")
            )
            continue
        if message is None:
            cancelled.append(row)
        else:
            messages.append(message)
    return messages, cancelled, failures


def load_events(rows: Sequence[ClaimedRow]) -> dict[int, Event]:
    """The events the rows of kind "event" carry, in one query (none without such rows)."""
    ids = {row.event_id for row in rows if row.event_id is not None}
    if not ids:
        return {}
    return Event.objects.in_bulk(ids)


def _event_message(row: ClaimedRow, events: dict[int, Event]) -> Message | None:
    """An event for its endpoint: its JSON payload as it stands now (scrubbed if its
    subscriber was erased since), with its id as ``webhook-id`` (decision 0084). None when the
    event is gone: cancel the row."""
    event = events.get(row.event_id or 0)
    if event is None:
        return None
    return Message(
        delivery_id=row.pk, payload=event.payload(), headers={"webhook-id": event.public_id}
    )


def _site_message(row: ClaimedRow) -> Message:
    return Message(delivery_id=row.pk, to=row.recipient, raw=bytes(row.raw_message or b""))


def _digest_message(row: ClaimedRow) -> Message | None:
    """A digest (channels.digests) keeps its complete bytes, built when it was written; it goes
    only to a subscriber still reachable now (None: cancel it)."""
    if not _reachable(row) or row.raw_message is None:
        return None
    return Message(delivery_id=row.pk, to=row.recipient, raw=bytes(row.raw_message))
