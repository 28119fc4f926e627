"""SES bounce and complaint feedback: what a verified SNS notification changes.

A permanent bounce or a complaint suppresses each recipient through the subscribers' service
(suppression list, subscriber status, consent log); a transient or undetermined bounce is only
recorded. Every bounce and complaint becomes one ``SesFeedback`` row, unique per SNS MessageId,
in the same transaction as its effects: a replayed notification finds the row and changes
nothing. Both SES shapes are read: identity notifications (``notificationType``) and
configuration-set event publishing (``eventType``). Decision 0043.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from django.db import transaction

from channels import sns
from channels.models import Delivery, SesFeedback
from subscribers.models import Suppression, email_hash
from subscribers.services import Origin, record_feedback_suppression

logger = logging.getLogger(__name__)

ORIGIN = Origin(via="ses")
PERMANENT = "Permanent"
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
        raise sns.SnsMessageError(
            f"The SES {name} notification has no {name} object.", code="malformed_event"
        )
    return value


def _recipients(section: dict[str, Any], key: str) -> list[dict[str, Any]]:
    entries = section.get(key)
    if not isinstance(entries, list) or not entries:
        raise sns.SnsMessageError(f"The SES event lists no {key}.", code="malformed_event")
    recipients: list[dict[str, Any]] = []
    for entry in entries:
        address = parseaddr(str(entry.get("emailAddress", ""))) if isinstance(entry, dict) else None
        if not address or "@" not in address[1]:
            raise sns.SnsMessageError(
                f"An entry of {key} has no emailAddress.", code="malformed_event"
            )
        recipients.append({**entry, "emailAddress": address[1]})
    return recipients


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
    kind = event_type(event)
    if kind == "Bounce":
        section = _object(event, "bounce")
        recipients = _recipients(section, "bouncedRecipients")
        feedback_type = SesFeedback.Type.BOUNCE
        subtype = str(section.get("bounceType", ""))
        reason = Suppression.Reason.BOUNCED if subtype == PERMANENT else None
    elif kind == "Complaint":
        section = _object(event, "complaint")
        recipients = _recipients(section, "complainedRecipients")
        feedback_type = SesFeedback.Type.COMPLAINT
        subtype = str(section.get("complaintFeedbackType", ""))
        reason = Suppression.Reason.COMPLAINED
    else:
        logger.info("ses feedback: %s event ignored", kind or "untyped")
        return FeedbackResult("ignored", type=kind.lower())

    mail = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    provider_id = str((mail or {}).get("messageId", ""))[:255]
    timestamp = section.get("timestamp")
    occurred_at = None
    if isinstance(timestamp, str):
        try:
            occurred_at = sns.parse_timestamp(timestamp)
        except sns.SnsMessageError:
            occurred_at = None
    entries = [
        {
            "email_hash": email_hash(recipient["emailAddress"]),
            "action": str(recipient.get("action", "")),
            "status": str(recipient.get("status", "")),
            "diagnostic": scrub(str(recipient.get("diagnosticCode", ""))),
        }
        for recipient in recipients
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
                "type": feedback_type,
                "subtype": subtype[:50],
                "provider_message_id": provider_id,
                "delivery": delivery,
                "occurred_at": occurred_at,
                "detail": {
                    "recipients": entries,
                    "sub_type": str(section.get("bounceSubType", "")),
                },
            },
        )
        if not created:
            logger.info("ses feedback: SNS message %s replayed, ignored", message["MessageId"])
            return FeedbackResult("replayed", feedback_type, subtype, 0, feedback.pk)
        suppressed = 0
        if reason is not None:
            for recipient, entry in zip(recipients, entries, strict=True):
                note = f"SES {kind.lower()}"
                if subtype:
                    note += f" ({subtype})"
                if entry["diagnostic"]:
                    note += f": {entry['diagnostic']}"
                changed = record_feedback_suppression(
                    recipient["emailAddress"],
                    reason,
                    ORIGIN,
                    note=note,
                    detail={
                        "ses_feedback_id": feedback.pk,
                        "sns_message_id": feedback.sns_message_id,
                        "type": feedback_type,
                        "subtype": subtype,
                        "diagnostic": entry["diagnostic"],
                        "delivery_id": delivery.pk if delivery else None,
                    },
                )
                suppressed += int(changed)
            feedback.suppressed = suppressed
            feedback.save(update_fields=["suppressed"])
    logger.info(
        "ses feedback: %s %s for delivery %s, %d recipients, %d suppressed",
        feedback_type,
        subtype or "-",
        delivery.pk if delivery else None,
        len(entries),
        suppressed,
    )
    return FeedbackResult("processed", feedback_type, subtype, suppressed, feedback.pk)
