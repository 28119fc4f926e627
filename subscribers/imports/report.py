"""What an import is asked to do (ImportOptions), what it reports (ImportReport), and the
context every batch writer carries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from events import recorder
from events.models import EventType

#: Bad rows kept with their line number in the report; further ones are only counted.
MAX_REPORTED_PROBLEMS = 100_000


@dataclass(frozen=True)
class ImportOptions:
    """How to import: topics (slugs) to subscribe every row to, and whether consent was given.

    ``confirmed`` makes new and pending rows active and logs an ``import`` consent event per
    row, quoting ``consent_note`` (required with ``confirmed``). Without it rows are pending.
    """

    topics: Sequence[str] = ()
    confirmed: bool = False
    consent_note: str = ""
    source: str = "import"
    batch_size: int | None = None
    #: Writer threads on PostgreSQL (each with its own connection); None: the setting.
    workers: int | None = None
    progress: bool = False


@dataclass
class ImportReport:
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    #: (line number, explanation) for each skipped row, up to MAX_REPORTED_PROBLEMS.
    problems: list[tuple[int, str]] = field(default_factory=list)

    def skip(self, line: int, reason: str, explanation: str) -> None:
        self.skipped += 1
        self.reasons[reason] += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append((line, explanation))

    def merge(self, other: ImportReport) -> None:
        self.rows_read += other.rows_read
        self.created += other.created
        self.updated += other.updated
        self.skipped += other.skipped
        self.reasons.update(other.reasons)
        room = MAX_REPORTED_PROBLEMS - len(self.problems)
        self.problems.extend(other.problems[:room])

    def summary(self) -> str:
        text = (
            f"Rows read: {self.rows_read}; created: {self.created}; updated: {self.updated}; "
            f"skipped: {self.skipped}"
        )
        if self.reasons:
            text += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(self.reasons.items())) + ")"
        return text


@dataclass
class ImportContext:
    """What one batch writer needs: the options, its own report, and values fixed per import."""

    options: ImportOptions
    report: ImportReport
    topic_ids: list[int]
    now: datetime
    consent_detail: dict[str, Any]
    #: Set once a batch met an existing address: later batches go straight to the upsert.
    seen_conflict: bool = False


def status_explanation(line: int, status: str) -> str:
    """Why a row of a subscriber who left (unsubscribed, bounced, complained) was skipped."""
    return f"line {line}: the subscriber with this address has status {status}; not re-added"


def suppression_explanation(line: int, reason: str) -> str:
    """Why a row whose address is on the suppression list was skipped."""
    return f"line {line}: the address is on the suppression list ({reason}); not re-added"


def record_created(subscriber_ids: Sequence[int], context: ImportContext) -> int:
    """A ``subscriber.created`` event per subscriber the batch created, in the batch's
    transaction, when an endpoint listens (decision 0084). Returns how many were recorded."""
    status = "active" if context.options.confirmed else "pending"
    return len(
        recorder.record_many(
            recorder.NewEvent(
                EventType.SUBSCRIBER_CREATED,
                {
                    "subscriber_id": pk,
                    "status": status,
                    "source": context.options.source,
                },
                subscriber_id=pk,
            )
            for pk in subscriber_ids
        )
    )
