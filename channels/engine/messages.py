"""Messages: each claimed row rendered for its backend, from versions rendered once per process
(decisions 0013 and 0037); rows whose recipient became unreachable are cancelled."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from django.conf import settings

from channels.backends.base import (
    Message,
    Outcome,
    OutcomeStatus,
)
from channels.engine.claims import ClaimedRow
from channels.engine.mime import PreparedEmail
from channels.models import Channel, Delivery
from config.mail import message_id_domain
from publishing.models import Publication
from publishing.rendering import EmailTemplate, render_email, render_for_kind
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


def load_versions(rows: Sequence[ClaimedRow]) -> dict[int, Any]:
    """The publication versions the rows need, in one query, without their bodies (a body is
    read only when that version is rendered for the first time in this process)."""
    ids = {row.version_id for row in rows} - {None}
    if not ids:
        return {}
    versions = Publication.history.model.objects.filter(history_id__in=ids).defer("body")
    return {version.history_id: version for version in versions}


def _email_template(version: Any, from_email: str) -> PreparedEmail:
    key = ("email", version.history_id, version.history_date, from_email)
    prepared: PreparedEmail = _cached(
        key, lambda: PreparedEmail.prepare(render_email(version), from_email)
    )
    return prepared


def _broadcast_payload(version: Any, kind: str) -> dict[str, Any]:
    def build() -> dict[str, Any]:
        payload = render_for_kind(version, kind)
        if isinstance(payload, EmailTemplate):
            return {"subject": payload.subject, "text": payload.text}
        return payload

    result: dict[str, Any] = _cached((kind, version.history_id, version.history_date), build)
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
) -> Message | None:
    subscriber = row.subscriber
    if subscriber is None or not _reachable(row) or version is None:
        return None
    prepared = _email_template(version, from_email)
    preferences, unsubscribe, list_headers = links.for_subscriber(
        subscriber.pk, subscriber.token_key
    )
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
    links = SubscriberLinks.build()
    domain = message_id_domain()
    messages: list[Message] = []
    cancelled: list[ClaimedRow] = []
    failures: list[Outcome] = []
    for row in rows:
        version = versions.get(row.version_id or 0)
        message: Message | None = None
        try:
            if row.kind == Delivery.Kind.SUBSCRIBER:
                message = _subscriber_message(row, version, from_email, date, links, domain)
            elif row.kind == Delivery.Kind.BROADCAST and version is not None:
                payload = _broadcast_payload(version, channel.kind)
                message = Message(delivery_id=row.pk, payload=payload)
            elif (
                row.kind == Delivery.Kind.TRANSACTIONAL
                and row.raw_message is not None
                and email_hash(row.recipient) not in blocked_hashes
            ):
                message = _site_message(row)
            elif row.kind == Delivery.Kind.DIGEST:
                message = _digest_message(row)
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


def _site_message(row: ClaimedRow) -> Message:
    return Message(delivery_id=row.pk, to=row.recipient, raw=bytes(row.raw_message or b""))


def _digest_message(row: ClaimedRow) -> Message | None:
    """A digest (channels.digests) keeps its complete bytes, built when it was written; it goes
    only to a subscriber still reachable now (None: cancel it)."""
    if not _reachable(row) or row.raw_message is None:
        return None
    return Message(delivery_id=row.pk, to=row.recipient, raw=bytes(row.raw_message))
