"""Guardrails (decision 0085): a dispatch whose email bounces or draws complaints too often is
paused before it hurts the sender's reputation; a Publisher resumes or cancels it.

``check`` measures one dispatch: hard bounces (messages the provider refused at once, status
``failed``, plus SES permanent bounces) over messages attempted, and complaints over messages
sent. Once at least GUARDRAIL_MIN_SAMPLE messages were attempted (since the last resume), a
rate above GUARDRAIL_BOUNCE_RATE or GUARDRAIL_COMPLAINT_RATE pauses it: its queued email
deliveries become ``held`` (the claim, which reads only ``queued`` rows, skips them) and the
Publishers are told by email; the admin shows the pause on every page. A batch that claimed
rows of a paused dispatch (a retry due again, a row claimed as the pause committed) holds them
instead of sending them. ``resume`` puts the held rows back in the queue and starts the next
measurement from the counts of that moment; ``cancel`` cancels them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone

from channels.engine.queue import enqueue_due_batches
from channels.models import Delivery, SesFeedback
from publishing.models import Dispatch
from publishing.roles import PUBLISHER

logger = logging.getLogger(__name__)

REASON_BOUNCES = "bounce_rate"
REASON_COMPLAINTS = "complaint_rate"


@dataclass(frozen=True)
class Counts:
    """A dispatch's email so far: messages attempted (sent or refused), sent, hard-bounced
    (refused at once, or bounced permanently later) and complained about."""

    attempted: int = 0
    sent: int = 0
    bounced: int = 0
    complained: int = 0

    def __sub__(self, other: Counts) -> Counts:
        return Counts(
            max(self.attempted - other.attempted, 0),
            max(self.sent - other.sent, 0),
            max(self.bounced - other.bounced, 0),
            max(self.complained - other.complained, 0),
        )

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.attempted if self.attempted else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained / self.sent if self.sent else 0.0


def measure(dispatch_id: int) -> Counts:
    """The dispatch's email counts: two aggregates (the ledger, the SES feedback)."""
    ledger = Delivery.objects.filter(dispatch_id=dispatch_id, kind=Delivery.Kind.SUBSCRIBER)
    rows = ledger.aggregate(
        sent=Count("pk", filter=Q(status=Delivery.Status.SENT)),
        refused=Count("pk", filter=Q(status=Delivery.Status.FAILED)),
    )
    feedback = SesFeedback.objects.filter(
        delivery__dispatch_id=dispatch_id, delivery__kind=Delivery.Kind.SUBSCRIBER
    ).aggregate(
        bounced=Count(
            "delivery", filter=Q(type=SesFeedback.Type.BOUNCE, subtype="Permanent"), distinct=True
        ),
        complained=Count("delivery", filter=Q(type=SesFeedback.Type.COMPLAINT), distinct=True),
    )
    return Counts(
        attempted=rows["sent"] + rows["refused"],
        sent=rows["sent"],
        bounced=rows["refused"] + feedback["bounced"],
        complained=feedback["complained"],
    )


def verdict(counts: Counts) -> str | None:
    """Why ``counts`` (measured since the last resume) pause a dispatch, or None."""
    if counts.attempted < settings.GUARDRAIL_MIN_SAMPLE:
        return None
    if counts.bounce_rate > settings.GUARDRAIL_BOUNCE_RATE:
        return REASON_BOUNCES
    if counts.complaint_rate > settings.GUARDRAIL_COMPLAINT_RATE:
        return REASON_COMPLAINTS
    return None


def describe(reason: str, counts: Counts) -> str:
    """The pause's reason, in a sentence a Publisher reads."""
    if reason == REASON_BOUNCES:
        return (
            f"Hard-bounce rate {counts.bounce_rate:.1%} ({counts.bounced} of "
            f"{counts.attempted} messages) is above the limit of "
            f"{settings.GUARDRAIL_BOUNCE_RATE:.1%}."
        )
    return (
        f"Complaint rate {counts.complaint_rate:.2%} ({counts.complained} of {counts.sent} "
        f"messages) is above the limit of {settings.GUARDRAIL_COMPLAINT_RATE:.2%}."
    )


def _baseline(dispatch: Dispatch) -> Counts:
    data = (dispatch.guardrail or {}).get("baseline") or {}
    return Counts(
        **{k: int(data.get(k, 0)) for k in ("attempted", "sent", "bounced", "complained")}
    )


def check(dispatch_id: int) -> bool:
    """Measure a sending dispatch and pause it when a rate is over its limit. Returns True
    when this call paused it."""
    dispatch = Dispatch.objects.filter(pk=dispatch_id, status=Dispatch.Status.SENDING).first()
    if dispatch is None:
        return False
    counts = measure(dispatch_id)
    since = counts - _baseline(dispatch)
    reason = verdict(since)
    if reason is None:
        return False
    return pause(dispatch_id, describe(reason, since), reason=reason, counts=since)


def check_soon(dispatch_ids: Iterable[int]) -> int:
    """``check`` each dispatch not checked in the last GUARDRAIL_CHECK_SECONDS (a bounce or a
    complaint just arrived, or a batch had refusals). Returns how many were paused."""
    paused = 0
    for dispatch_id in set(dispatch_ids):
        if cache.add(f"guardrail:{dispatch_id}", 1, settings.GUARDRAIL_CHECK_SECONDS):
            paused += int(check(dispatch_id))
    return paused


def check_sending() -> int:
    """The sweeper's pass: ``check`` every sending dispatch with any refusal, bounce or
    complaint (a rate can pass its limit only once the sample is large enough, without a new
    bounce). Returns how many were paused."""
    with_feedback = SesFeedback.objects.filter(
        delivery__dispatch__status=Dispatch.Status.SENDING
    ).values_list("delivery__dispatch_id", flat=True)
    refused = Delivery.objects.filter(
        dispatch__status=Dispatch.Status.SENDING,
        kind=Delivery.Kind.SUBSCRIBER,
        status=Delivery.Status.FAILED,
    ).values_list("dispatch_id", flat=True)
    ids = {pk for pk in [*with_feedback.distinct(), *refused.distinct()] if pk is not None}
    return sum(check(pk) for pk in sorted(ids))


def pause(
    dispatch_id: int,
    text: str,
    *,
    reason: str = "manual",
    counts: Counts | None = None,
    now: datetime | None = None,
) -> bool:
    """Pause a sending dispatch's email: its queued email deliveries are held. Returns False
    when it was not sending (paused already, done, cancelled). The Publishers are emailed once
    the pause is committed."""
    now = now or timezone.now()
    with transaction.atomic():
        dispatch = _locked(dispatch_id, Dispatch.Status.SENDING)
        if dispatch is None:
            return False
        held = Delivery.objects.filter(
            dispatch_id=dispatch_id, kind=Delivery.Kind.SUBSCRIBER, status=Delivery.Status.QUEUED
        ).update(status=Delivery.Status.HELD, updated_at=now)
        guardrail = dict(dispatch.guardrail or {})
        guardrail["pauses"] = [
            *guardrail.get("pauses", []),
            {
                "at": now.isoformat(),
                "reason": reason,
                "text": text,
                "held": held,
                "counts": asdict(counts) if counts is not None else None,
            },
        ]
        dispatch.status = Dispatch.Status.PAUSED
        dispatch.paused_at = now
        dispatch.pause_reason = text[:500]
        dispatch.guardrail = guardrail
        dispatch.save(update_fields=["status", "paused_at", "pause_reason", "guardrail"])
        transaction.on_commit(lambda: tell_publishers(dispatch_id))
    logger.warning("Dispatch %s paused (%s held): %s", dispatch_id, held, text)
    return True


def resume(dispatch_id: int, by: Any = None, now: datetime | None = None) -> int | None:
    """Put a paused dispatch's held deliveries back in the queue; later checks measure from
    the counts of this moment. Returns how many rows were released, None when it was not
    paused."""
    now = now or timezone.now()
    with transaction.atomic():
        dispatch = _locked(dispatch_id, Dispatch.Status.PAUSED)
        if dispatch is None:
            return None
        released = Delivery.objects.filter(
            dispatch_id=dispatch_id, status=Delivery.Status.HELD
        ).update(
            status=Delivery.Status.QUEUED,
            next_attempt_at=now,
            lease_expires_at=None,
            updated_at=now,
        )
        guardrail = dict(dispatch.guardrail or {})
        guardrail["baseline"] = asdict(measure(dispatch_id))
        guardrail["resumes"] = [
            *guardrail.get("resumes", []),
            {"at": now.isoformat(), "by": _username(by), "released": released},
        ]
        dispatch.status = Dispatch.Status.SENDING
        dispatch.paused_at = None
        dispatch.pause_reason = ""
        dispatch.guardrail = guardrail
        dispatch.save(update_fields=["status", "paused_at", "pause_reason", "guardrail"])
        transaction.on_commit(lambda: enqueue_due_batches(dispatch_id=dispatch_id))
    logger.info("Dispatch %s resumed by %s: %s deliveries queued", dispatch_id, by, released)
    return released


def cancel(dispatch_id: int, by: Any = None, now: datetime | None = None) -> int | None:
    """Cancel a paused dispatch: its held deliveries (and any retry queued again meanwhile)
    are cancelled and it is closed. Returns how many rows were cancelled, None when it was
    not paused."""
    now = now or timezone.now()
    who = _username(by)
    with transaction.atomic():
        dispatch = _locked(dispatch_id, Dispatch.Status.PAUSED)
        if dispatch is None:
            return None
        # Held rows, and any retry queued again since the pause (a row in flight at the pause
        # that failed transiently); a row in flight now is cancelled at its next claim.
        cancelled = Delivery.objects.filter(
            dispatch_id=dispatch_id,
            kind=Delivery.Kind.SUBSCRIBER,
            status__in=[Delivery.Status.HELD, Delivery.Status.QUEUED],
        ).update(
            status=Delivery.Status.CANCELLED,
            last_error=f"Dispatch cancelled by {who or 'a Publisher'} while paused.",
            updated_at=now,
        )
        guardrail = dict(dispatch.guardrail or {})
        guardrail["cancelled"] = {"at": now.isoformat(), "by": who, "cancelled": cancelled}
        dispatch.status = Dispatch.Status.CANCELLED
        dispatch.finished_at = now
        dispatch.guardrail = guardrail
        dispatch.save(update_fields=["status", "finished_at", "guardrail"])
    logger.info("Dispatch %s cancelled by %s: %s deliveries cancelled", dispatch_id, who, cancelled)
    return cancelled


def _locked(dispatch_id: int, status: str) -> Dispatch | None:
    """The dispatch, locked until the end of the transaction, if it has ``status``."""
    return Dispatch.objects.select_for_update().filter(pk=dispatch_id, status=status).first()


def publishers() -> list[str]:
    """The addresses of active Publishers and superusers."""
    users = get_user_model().objects.filter(is_active=True).exclude(email="")
    chosen = users.filter(Q(groups__name=PUBLISHER) | Q(is_superuser=True)).distinct()
    return sorted({user.email for user in chosen})


def tell_publishers(dispatch_id: int) -> int:
    """Email the Publishers that a dispatch was paused, with the reason and its page."""
    dispatch = Dispatch.objects.select_related("publication").filter(pk=dispatch_id).first()
    recipients = publishers()
    if dispatch is None or not recipients:
        return 0
    page = settings.SITE_URL + reverse("admin:publishing_dispatch_change", args=[dispatch.pk])
    body = (
        f"Sending of “{dispatch.publication.title}” (dispatch {dispatch.pk}) was paused.\n\n"
        f"{dispatch.pause_reason}\n\n"
        "Nothing more of it is sent until a Publisher resumes or cancels it:\n"
        f"{page}\n"
    )
    return send_mail(
        f"[{settings.SITE_NAME}] Sending paused: {dispatch.publication.title}"[:200],
        body,
        None,
        recipients,
    )


def _username(user: Any) -> str:
    return str(getattr(user, "username", "") or "") if user is not None else ""
