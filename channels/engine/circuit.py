"""The circuit breaker of each channel (decision 0035): a failing provider holds its own
deliveries back and no others."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Case, F, Q, Value, When

from channels.backends.base import (
    Outcome,
    OutcomeStatus,
)
from channels.engine.outcomes import MAX_ERROR_LENGTH
from channels.models import Channel

logger = logging.getLogger(__name__)


def enter_circuit(channel: Channel, now: datetime) -> str:
    """Return "closed" (send), "trial" (this batch tests a half-open circuit) or "blocked"."""
    if channel.circuit_state == Channel.CircuitState.CLOSED:
        return "closed"
    cooled = now - timedelta(seconds=settings.DELIVERY_CIRCUIT_COOLDOWN_SECONDS)
    if channel.circuit_state == Channel.CircuitState.OPEN and (
        channel.circuit_opened_at is None or channel.circuit_opened_at <= cooled
    ):
        # Only one worker wins the conditional update, so only one trial batch runs.
        won = (
            Channel.objects.filter(pk=channel.pk, circuit_state=Channel.CircuitState.OPEN)
            .filter(Q(circuit_opened_at__isnull=True) | Q(circuit_opened_at__lte=cooled))
            .update(circuit_state=Channel.CircuitState.HALF_OPEN, circuit_opened_at=now)
        )
        return "trial" if won else "blocked"
    return "blocked"


def record_channel_health(
    channel_id: int,
    outcomes: Sequence[Outcome],
    *,
    trial: bool,
    now: datetime,
    known: Channel | None = None,
) -> None:
    """Update the failure streak, the circuit and the last error in one statement.

    ``known``: the channel as the batch read it at its start; when it already held every
    value this update would write (a healthy channel that accepted the whole batch), nothing
    is written: no statement, and no row version of the channel for every batch of every
    worker to wait on. A failure another worker recorded since is then left for the next
    batch that reads it to clear.

    ``last_error`` shows the latest failure still current: the batch's last error when it
    came after the batch's last accepted message; cleared (with ``last_error_at``) when the
    provider accepted a message after every failure, so a recovered channel shows none.
    """
    answered = [o.status in (OutcomeStatus.SENT, OutcomeStatus.PERMANENT) for o in outcomes]
    # No answer (UNCERTAIN) counts against the provider like a transient failure.
    transient = [o.status in (OutcomeStatus.TRANSIENT, OutcomeStatus.UNCERTAIN) for o in outcomes]
    sent = [i for i, o in enumerate(outcomes) if o.status == OutcomeStatus.SENT]
    since = sent[-1] + 1 if sent else 0
    errors = [o.error for o in outcomes[since:] if o.status != OutcomeStatus.SENT and o.error]
    updates: dict[str, Any] = {}
    if errors:
        updates.update(last_error=errors[-1][:MAX_ERROR_LENGTH], last_error_at=now)
    elif sent:
        updates.update(last_error="", last_error_at=None)
    threshold = settings.DELIVERY_CIRCUIT_THRESHOLD
    if any(answered):
        # The provider answers: only the failures after its last answer still count.
        last = max(i for i, ok in enumerate(answered) if ok)
        updates.update(
            consecutive_failures=sum(transient[last + 1 :]),
            circuit_state=Channel.CircuitState.CLOSED,
            circuit_opened_at=None,
        )
    elif any(transient):
        streak = F("consecutive_failures") + sum(transient)
        opens = Q(consecutive_failures__gte=threshold - sum(transient))
        if trial:
            opens = Q(pk__isnull=False)
        updates.update(
            consecutive_failures=streak,
            circuit_state=Case(
                When(opens, then=Value(Channel.CircuitState.OPEN)),
                default=F("circuit_state"),
            ),
            circuit_opened_at=Case(When(opens, then=Value(now)), default=F("circuit_opened_at")),
        )
    elif trial:
        updates.update(circuit_state=Channel.CircuitState.CLOSED, circuit_opened_at=None)
    if known is not None and all(
        not hasattr(value, "resolve_expression") and getattr(known, name) == value
        for name, value in updates.items()
    ):
        return
    if updates:
        Channel.objects.filter(pk=channel_id).update(**updates)
