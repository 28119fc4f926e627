"""The sweeper: what crashes and lost tasks left behind, repaired from the ledger and the sent
journal (decisions 0030, 0039 and 0068)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, Value
from django.utils import timezone
from django_q.tasks import async_task

from channels.backends.base import (
    Outcome,
    OutcomeStatus,
)
from channels.engine import abtest, guardrails, journal
from channels.engine.attempts import disable_failing_endpoints
from channels.engine.claims import ClaimedRow, claimed_rows, dispatch_status
from channels.engine.fanout import finish_dispatches
from channels.engine.outcomes import record_outcomes
from channels.engine.queue import PLAN_DISPATCH_TASK, SEND_BATCH_TASK, enqueue_due_batches
from channels.engine.relay import prune_events, relay_events
from channels.models import Channel, Delivery
from publishing.models import Dispatch

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    #: Expired rows the sent journal showed were accepted: recorded as sent, not re-queued.
    recovered: int = 0
    #: Expired rows the journal showed were handed over with no answer (decision 0068).
    uncertain: int = 0
    #: Expired rows the journal showed were refused: their outcome applied.
    refused: int = 0
    requeued: int = 0
    dead: int = 0
    finished: int = 0
    replanned: int = 0
    enqueued: int = 0
    #: A/B subject tests decided, their rest's deliveries created (decision 0079).
    decided: int = 0
    #: Dispatches a guardrail paused (decision 0085).
    paused: int = 0
    #: Event endpoints disabled for failing too long, their owners told (decision 0084).
    endpoints_disabled: int = 0
    #: Event deliveries the relay created (decision 0084).
    relayed: int = 0
    #: Events older than EVENT_RETENTION_DAYS deleted, with their deliveries and attempts.
    events_pruned: int = 0


def sweep() -> SweepReport:
    """Repair what crashes and lost tasks left behind; run by a django-q2 schedule.

    - deliveries whose lease expired (their worker died) are sorted by the sent journal
      (``recover_expired_leases``): accepted ones are recorded as sent, refused ones get their
      outcome, uncertain ones follow their channel's policy, the never started are re-queued
      (dead on their last attempt);
    - a half-open circuit whose trial batch never reported goes back to open;
    - dispatches whose fan-out has not ended long after creation are planned again (their
      task was lost, or its worker died between two ranges; decision 0088);
    - channels with due deliveries nobody claimed for DELIVERY_SWEEP_STALE_SECONDS get batches;
    - sending dispatches with refusals, bounces or complaints are checked by the guardrails;
    - A/B subject tests whose time has come are decided and their rest planned;
    - dispatches whose deliveries are all settled are marked done;
    - event endpoints failing for EVENT_ENDPOINT_DISABLE_AFTER_DAYS are disabled, owners told;
    - events recorded and not yet relayed to their endpoints are (a relay hint was lost);
    - events older than EVENT_RETENTION_DAYS are deleted, a chunk per run.
    """
    now = timezone.now()
    report = SweepReport()
    recover_expired_leases(now, report)
    lease = timedelta(seconds=settings.DELIVERY_LEASE_SECONDS)
    Channel.objects.filter(
        circuit_state=Channel.CircuitState.HALF_OPEN, circuit_opened_at__lt=now - lease
    ).update(circuit_state=Channel.CircuitState.OPEN, circuit_opened_at=None)
    stale = now - timedelta(seconds=settings.DELIVERY_SWEEP_STALE_SECONDS)
    unfinished = Q(status=Dispatch.Status.PLANNING) | Q(
        status__in=(Dispatch.Status.SENDING, Dispatch.Status.PAUSED), planned_at__isnull=True
    )
    for dispatch_id in Dispatch.objects.filter(unfinished, created_at__lt=stale).values_list(
        "pk", flat=True
    ):
        async_task(PLAN_DISPATCH_TASK, dispatch_id)
        report.replanned += 1
    report.enqueued = enqueue_due_batches(stale_before=stale)
    cooled = now - timedelta(seconds=settings.DELIVERY_CIRCUIT_COOLDOWN_SECONDS)
    for channel_id in (
        Channel.objects.filter(is_enabled=True, circuit_state=Channel.CircuitState.OPEN)
        .filter(Q(circuit_opened_at__isnull=True) | Q(circuit_opened_at__lte=cooled))
        .filter(Exists(Delivery.objects.due(now).filter(channel_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    ):
        async_task(SEND_BATCH_TASK, channel_id)
        report.enqueued += 1
    report.paused = guardrails.check_sending()
    report.decided = abtest.decide_due(now)
    report.finished = finish_dispatches()
    report.endpoints_disabled = disable_failing_endpoints(now)
    report.relayed = relay_events()
    report.events_pruned = prune_events(now)
    return report


#: Expired rows the sweeper sorts per run; any beyond it wait for the next run.
SWEEP_JOURNAL_LIMIT = 10_000

WORKER_DIED = "The worker stopped while sending (lease expired)"


def recover_expired_leases(now: datetime, report: SweepReport | None = None) -> int:
    """Sort the rows whose lease expired by what the sent journal says (decision 0068).

    One read of the rows, one bulk read of the journal, then one conditional UPDATE per claim
    (lease): a row is written only while it is still ``sending`` under the lease read, so a
    worker that outlived its lease and records later changes nothing. Per row:

    - accepted (by any claim): sent, with the provider's id and acceptance time;
    - refused under this claim: that outcome (failed, or queued for a retry);
    - in flight under this claim, or any row when the journal is off: uncertain, resolved by
      the channel's policy (queued again at once with ``resend``, ``uncertain`` with ``skip``);
    - no entry of this claim (never handed over): queued again at once, dead on its last
      attempt.

    When the journal cannot be read, nothing is changed: the rows wait for the next sweep.
    Returns how many rows were recorded as sent.
    """
    report = report if report is not None else SweepReport()
    rows = claimed_rows(
        Delivery.objects.lease_expired(now)
        .annotate(
            is_reachable=Value(False),
            version_id=F("dispatch__version_id"),
            dispatch_status=dispatch_status(),
        )
        .order_by("pk")[:SWEEP_JOURNAL_LIMIT]
    )
    if not rows:
        return 0
    enabled = journal.is_enabled()
    try:
        entries = journal.read((row.pk, row.created_at) for row in rows) if enabled else {}
    except journal.JournalReadError:
        logger.warning("Sweeper: %s expired leases wait: the journal cannot be read", len(rows))
        return 0
    claims: dict[datetime, list[tuple[ClaimedRow, Outcome]]] = {}
    accepted_at: dict[int, datetime] = {}
    for row in rows:
        outcome = _recovered_outcome(row, entries.get(row.pk), journal_on=enabled)
        if outcome.status == OutcomeStatus.SENT:
            accepted_at[row.pk] = entries[row.pk].at
        if row.lease_expires_at is not None:
            claims.setdefault(row.lease_expires_at, []).append((row, outcome))
    policies = {
        pk: Channel(pk=pk, kind=kind, uncertain_policy=policy).effective_uncertain_policy
        for pk, kind, policy in Channel.objects.filter(
            pk__in={row.channel_id for row in rows}
        ).values_list("pk", "kind", "uncertain_policy")
    }
    for lease, held in claims.items():
        counts = record_outcomes(
            [row for row, _ in held],
            [outcome for _, outcome in held],
            lease,
            now,
            sent_at=accepted_at,
            policies=policies,
            retry_now=True,
        )
        report.recovered += counts.get(Delivery.Status.SENT, 0)
        report.dead += counts.get(Delivery.Status.DEAD, 0)
        report.refused += counts.get(Delivery.Status.FAILED, 0)
        # Uncertain rows are counted whether their policy re-queued or skipped them.
        report.uncertain += sum(1 for _, o in held if o.status == OutcomeStatus.UNCERTAIN)
        report.requeued += counts.get(Delivery.Status.QUEUED, 0)
    if report.recovered or report.uncertain or report.requeued or report.dead or report.refused:
        logger.warning(
            "Sweeper: expired leases: %s found sent in the journal, %s uncertain, %s refused, "
            "%s re-queued, %s dead",
            report.recovered,
            report.uncertain,
            report.refused,
            report.requeued,
            report.dead,
        )
    return report.recovered


def _recovered_outcome(
    row: ClaimedRow, entry: journal.Entry | None, *, journal_on: bool
) -> Outcome:
    """What the journal says became of an expired row (see recover_expired_leases)."""
    if entry is not None and entry.state == journal.State.ACCEPTED:
        return Outcome(row.pk, OutcomeStatus.SENT, provider_message_id=entry.detail)
    this_claim = (
        entry is not None
        and row.lease_expires_at is not None
        and entry.lease == journal.lease_token(row.lease_expires_at)
    )
    if entry is not None and this_claim and entry.state == journal.State.REFUSED:
        status, error = entry.refusal()
        try:
            refused = OutcomeStatus(status)
        except ValueError:
            refused = OutcomeStatus.TRANSIENT
        return Outcome(row.pk, refused, error=error)
    if (entry is not None and this_claim) or not journal_on:
        return Outcome(
            row.pk,
            OutcomeStatus.UNCERTAIN,
            error=f"{WORKER_DIED} after handing the message over, before the answer.",
        )
    return Outcome(row.pk, OutcomeStatus.TRANSIENT, error=f"{WORKER_DIED} before sending it.")
