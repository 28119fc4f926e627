"""SES bounce and complaint feedback: what a verified SNS notification changes.

A permanent bounce or a complaint suppresses each recipient through the subscribers' service
(suppression list, subscriber status, consent log), and the guardrails look at the delivery's
dispatch again (decision 0085); a transient bounce is counted per address (``SoftBounce``) and
suppresses an address after SOFT_BOUNCE_LIMIT of them within SOFT_BOUNCE_WINDOW_DAYS; an
undetermined bounce is only recorded. Every bounce and complaint becomes one ``SesFeedback``
row, unique per SNS MessageId, in the same transaction as its effects: a replayed notification
finds the row and changes nothing. Both SES shapes are read: identity notifications
(``notificationType``) and configuration-set event publishing (``eventType``). Decision 0043.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from channels import sns
from channels.engine import guardrails
from channels.exceptions import SnsMessageError
from channels.models import Delivery, SesFeedback, SoftBounce
from events import recorder
from events.models import EventType
from subscribers.models import Suppression, email_hash
from subscribers.services import Origin, record_feedback_suppression

logger = logging.getLogger(__name__)

ORIGIN = Origin(via="ses")
PERMANENT = "Permanent"
TRANSIENT = "Transient"
#: Anything shaped like an address, removed from diagnostics before they are stored.
_ADDRESS = re.compile(r"[^\s<>()\[\]\"';,:]+@[^\s<>()\[\]\"';,]+")
MAX_DIAGNOSTIC_LENGTH = 300


@dataclass(frozen=True)
class FeedbackResult:
    """What one notification did: ``processed``, ``replayed`` or ``ignored``."""

    result: str
    type: str = ""
    subtype: str = ""
    suppressed: int = 0
    feedback_id: int | None = None


def scrub(text: str) -> str:
    """``text`` without any email address in it, cut to MAX_DIAGNOSTIC_LENGTH."""
    return _ADDRESS.sub("[address]", text)[:MAX_DIAGNOSTIC_LENGTH]


def event_type(event: dict[str, Any]) -> str:
    """``Bounce``, ``Complaint``, ``Delivery``... from either SES shape."""
    return str(event.get("notificationType") or event.get("eventType") or "")


def _object(event: dict[str, Any], name: str) -> dict[str, Any]:
    value = event.get(name)
    if not isinstance(value, dict):
        raise SnsMessageError(
            f"The SES {name} notification has no {name} object.", code="malformed_event"
        )
    return value


def _recipients(section: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = section.get(key)
    if not isinstance(entries, list) or not entries:
        raise SnsMessageError(f"The SES event lists no {key}.", code="malformed_event")
    recipients: list[dict[str, Any]] = []
    for entry in entries:
        address = parseaddr(str(entry.get("emailAddress", ""))) if isinstance(entry, dict) else None
        if not address or "@" not in address[1]:
            raise SnsMessageError(f"An entry of {key} has no emailAddress.", code="malformed_event")
        recipients.append({**entry, "emailAddress": address[1]})
    return recipients


@dataclass(frozen=True)
class _Report:
    """A bounce or complaint read from an SES event: what record_ses_feedback applies."""

    kind: str
    section: dict[str, Any]
    recipients: list[dict[str, Any]]
    feedback_type: str
    subtype: str
    #: The suppression it causes, None for a transient or undetermined bounce.
    reason: str | None


def _report(event: dict[str, Any]) -> _Report | None:
    """The bounce or complaint in ``event``, or None for any other event."""
    kind = event_type(event)
    if kind == "Bounce":
        section = _object(event, "bounce")
        subtype = str(section.get("bounceType", ""))
        return _Report(
            kind,
            section,
            _recipients(section, "bouncedRecipients"),
            SesFeedback.Type.BOUNCE,
            subtype,
            Suppression.Reason.BOUNCED if subtype == PERMANENT else None,
        )
    if kind == "Complaint":
        section = _object(event, "complaint")
        return _Report(
            kind,
            section,
            _recipients(section, "complainedRecipients"),
            SesFeedback.Type.COMPLAINT,
            str(section.get("complaintFeedbackType", "")),
            Suppression.Reason.COMPLAINED,
        )
    return None


def _occurred_at(section: dict[str, Any]) -> datetime | None:
    timestamp = section.get("timestamp")
    if not isinstance(timestamp, str):
        return None
    try:
        return sns.parse_timestamp(timestamp)
    except SnsMessageError:
        return None


def record_ses_feedback(message: dict[str, str]) -> FeedbackResult:
    """Apply the SES event of a verified SNS Notification; idempotent per SNS MessageId.

    Returns what was done. Raises SnsMessageError (``malformed_event``, 400) for a bounce or
    complaint without its recipients; anything that is not a bounce or a complaint (deliveries,
    opens, SES's own test notification, a message that is not SES JSON) is ``ignored``.
    """
    event = sns.ses_event(message)
    if event is None:
        logger.info("ses feedback: notification %s is not an SES event", message["MessageId"])
        return FeedbackResult("ignored")
    report = _report(event)
    if report is None:
        kind = event_type(event)
        logger.info("ses feedback: %s event ignored", kind or "untyped")
        return FeedbackResult("ignored", type=kind.lower())
    mail = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    provider_id = str((mail or {}).get("messageId", ""))[:255]
    entries = [
        {
            "email_hash": email_hash(recipient["emailAddress"]),
            "action": str(recipient.get("action", "")),
            "status": str(recipient.get("status", "")),
            "diagnostic": scrub(str(recipient.get("diagnosticCode", ""))),
        }
        for recipient in report.recipients
    ]
    with transaction.atomic():
        delivery = (
            Delivery.objects.filter(provider_message_id=provider_id)
            .exclude(provider_message_id="")
            .order_by("pk")
            .first()
            if provider_id
            else None
        )
        feedback, created = SesFeedback.objects.get_or_create(
            sns_message_id=message["MessageId"][:100],
            defaults={
                "topic_arn": message["TopicArn"][:256],
                "type": report.feedback_type,
                "subtype": report.subtype[:50],
                "provider_message_id": provider_id,
                "delivery": delivery,
                "occurred_at": _occurred_at(report.section),
                "detail": {
                    "recipients": entries,
                    "sub_type": str(report.section.get("bounceSubType", "")),
                },
            },
        )
        if not created:
            logger.info("ses feedback: SNS message %s replayed, ignored", message["MessageId"])
            return FeedbackResult("replayed", report.feedback_type, report.subtype, 0, feedback.pk)
        suppressed = 0
        if report.reason is not None:
            suppressed = _suppress(report, entries, feedback, delivery)
        elif report.feedback_type == SesFeedback.Type.BOUNCE and report.subtype == TRANSIENT:
            suppressed = _count_soft_bounces(report, entries, feedback, delivery)
        if suppressed:
            feedback.suppressed = suppressed
            feedback.save(update_fields=["suppressed"])
        _record_event(report, feedback, delivery, suppressed)
    if report.reason is not None and delivery is not None and delivery.dispatch_id is not None:
        guardrails.check_soon([delivery.dispatch_id])
    logger.info(
        "ses feedback: %s %s for delivery %s, %d recipients, %d suppressed",
        report.feedback_type,
        report.subtype or "-",
        delivery.pk if delivery else None,
        len(entries),
        suppressed,
    )
    return FeedbackResult(
        "processed", report.feedback_type, report.subtype, suppressed, feedback.pk
    )


def _record_event(
    report: _Report, feedback: SesFeedback, delivery: Delivery | None, suppressed: int
) -> None:
    """``delivery.bounced`` or ``delivery.complained``, in the feedback's transaction: ids and
    SES's types, never the addresses or SES's diagnostic (decision 0084)."""
    subscriber_id = delivery.subscriber_id if delivery is not None else None
    is_bounce = report.feedback_type == SesFeedback.Type.BOUNCE
    recorder.record(
        EventType.DELIVERY_BOUNCED if is_bounce else EventType.DELIVERY_COMPLAINED,
        {
            "delivery_id": delivery.pk if delivery is not None else None,
            "dispatch_id": delivery.dispatch_id if delivery is not None else None,
            "subscriber_id": subscriber_id,
            "type": report.subtype,
            "sub_type": str(report.section.get("bounceSubType", "")) if is_bounce else "",
            "permanent": report.reason is not None,
            "suppressed": suppressed,
        },
        subscriber_id=subscriber_id,
    )


def _suppress(
    report: _Report,
    entries: list[dict[str, str]],
    feedback: SesFeedback,
    delivery: Delivery | None,
) -> int:
    """Suppress each recipient of ``report`` through the subscribers' service; returns how
    many addresses this put on the suppression list."""
    assert report.reason is not None  # noqa: S101 (the caller checked)
    suppressed = 0
    for recipient, entry in zip(report.recipients, entries, strict=True):
        note = f"SES {report.kind.lower()}"
        if report.subtype:
            note += f" ({report.subtype})"
        if entry["diagnostic"]:
            note += f": {entry['diagnostic']}"
        changed = record_feedback_suppression(
            recipient["emailAddress"],
            report.reason,
            ORIGIN,
            note=note,
            detail={
                "ses_feedback_id": feedback.pk,
                "sns_message_id": feedback.sns_message_id,
                "type": report.feedback_type,
                "subtype": report.subtype,
                "diagnostic": entry["diagnostic"],
                "delivery_id": delivery.pk if delivery else None,
            },
        )
        suppressed += int(changed)
    return suppressed


def _count_soft_bounces(
    report: _Report,
    entries: list[dict[str, str]],
    feedback: SesFeedback,
    delivery: Delivery | None,
) -> int:
    """Record a transient bounce of each recipient; suppress (as bounced) an address with
    SOFT_BOUNCE_LIMIT of them within SOFT_BOUNCE_WINDOW_DAYS. Returns how many addresses this
    put on the suppression list."""
    at = feedback.occurred_at or timezone.now()
    SoftBounce.objects.bulk_create(
        SoftBounce(email_hash=entry["email_hash"], feedback=feedback, occurred_at=at)
        for entry in entries
    )
    limit = settings.SOFT_BOUNCE_LIMIT
    if limit <= 0:
        return 0
    window = timedelta(days=settings.SOFT_BOUNCE_WINDOW_DAYS)
    suppressed = 0
    for recipient, entry in zip(report.recipients, entries, strict=True):
        count = SoftBounce.objects.filter(
            email_hash=entry["email_hash"], occurred_at__gt=at - window, occurred_at__lte=at
        ).count()
        if count < limit:
            continue
        changed = record_feedback_suppression(
            recipient["emailAddress"],
            Suppression.Reason.BOUNCED,
            ORIGIN,
            note=(
                f"{count} SES transient bounces within {settings.SOFT_BOUNCE_WINDOW_DAYS} days"
                + (f": {entry['diagnostic']}" if entry["diagnostic"] else "")
            ),
            detail={
                "ses_feedback_id": feedback.pk,
                "sns_message_id": feedback.sns_message_id,
                "type": report.feedback_type,
                "subtype": report.subtype,
                "soft_bounces": count,
                "diagnostic": entry["diagnostic"],
                "delivery_id": delivery.pk if delivery else None,
            },
        )
        suppressed += int(changed)
    return suppressed
