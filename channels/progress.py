"""How far a dispatch has got: counts by status and channel (read-only; command, admin, tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q

from channels.models import Delivery
from publishing.models import Dispatch, Publication

#: Display order of the statuses: the live ones first, then the settled ones.
STATUS_ORDER = [
    Delivery.Status.QUEUED,
    Delivery.Status.HELD,
    Delivery.Status.SENDING,
    Delivery.Status.SENT,
    Delivery.Status.FAILED,
    Delivery.Status.DEAD,
    Delivery.Status.CANCELLED,
    Delivery.Status.UNCERTAIN,
]


@dataclass
class DispatchProgress:
    """Deliveries of one dispatch by channel and status, with totals and the settled share."""

    dispatch_id: int
    dispatch_status: str
    #: The fan-out has ended (``Dispatch.planned_at`` is set): no more rows will come.
    planned: bool = True
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Deliveries whose hand-over got no answer at least once, by status (decision 0068):
    #: ``uncertain`` ones were not resent; the others were (and may have arrived twice).
    uncertain_by_status: dict[str, int] = field(default_factory=dict)

    @property
    def by_status(self) -> dict[str, int]:
        totals: dict[str, int] = {str(status): 0 for status in STATUS_ORDER}
        for counts in self.by_channel.values():
            for status, count in counts.items():
                totals[status] = totals.get(status, 0) + count
        return {str(status): count for status, count in totals.items()}

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def settled(self) -> int:
        return sum(self.by_status[str(status)] for status in Delivery.SETTLED)

    @property
    def retryable(self) -> int:
        """Failed, dead and uncertain (not resent) deliveries: what a Publisher may re-queue."""
        return sum(self.by_status[str(status)] for status in Delivery.REQUEUEABLE)

    @property
    def uncertain(self) -> int:
        """Deliveries handed over without an answer at least once, resent or not."""
        return sum(self.uncertain_by_status.values())

    @property
    def uncertain_resent(self) -> int:
        """Uncertain deliveries their channel's policy sent again (at least once)."""
        return self.uncertain - self.by_status[Delivery.Status.UNCERTAIN]

    @property
    def percent(self) -> float:
        """Share of deliveries settled, 0 to 100 (100 for a dispatch with none)."""
        return 100.0 * self.settled / self.total if self.total else 100.0

    @property
    def is_settled(self) -> bool:
        """True when nothing is queued or sending and the fan-out is over (decision 0088)."""
        return (
            self.planned
            and self.dispatch_status != Dispatch.Status.PLANNING
            and self.settled == self.total
        )

    def rows(self) -> list[tuple[str, list[int], int]]:
        """(channel, counts in STATUS_ORDER, total) per channel, for tables."""
        return [
            (
                channel,
                [counts.get(str(s), 0) for s in STATUS_ORDER],
                sum(counts.values()),
            )
            for channel, counts in sorted(self.by_channel.items())
        ]

    def as_json(self) -> dict[str, Any]:
        """What the dispatch page's poller reads (channels/static/channels/admin/progress.js):
        counts per channel and status in STATUS_ORDER, totals, the settled share, done."""
        return {
            "dispatch": self.dispatch_id,
            "dispatch_status": self.dispatch_status,
            "statuses": [str(status) for status in STATUS_ORDER],
            "channels": [
                {
                    "name": channel,
                    "counts": dict(zip(map(str, STATUS_ORDER), counts, strict=True)),
                    "total": total,
                }
                for channel, counts, total in self.rows()
            ],
            "totals": [self.by_status[str(status)] for status in STATUS_ORDER],
            "total": self.total,
            "settled": self.settled,
            "sent": self.by_status[Delivery.Status.SENT],
            "percent": round(self.percent, 1),
            "uncertain": self.uncertain,
            "done": self.is_settled,
        }


def dispatch_progress(dispatch: Dispatch) -> DispatchProgress:
    """Count the dispatch's deliveries by channel and status in one grouped query."""
    progress = DispatchProgress(
        dispatch_id=dispatch.pk,
        dispatch_status=dispatch.status,
        planned=dispatch.planned_at is not None or dispatch.status != Dispatch.Status.SENDING,
    )
    counts = (
        Delivery.objects.filter(dispatch_id=dispatch.pk)
        .values("channel__name", "status")
        .annotate(n=Count("id"), uncertain=Count("id", filter=Q(uncertain_at__isnull=False)))
        .order_by()
    )
    for row in counts:
        progress.by_channel.setdefault(row["channel__name"], {})[row["status"]] = row["n"]
        if row["uncertain"]:
            status = row["status"]
            progress.uncertain_by_status[status] = (
                progress.uncertain_by_status.get(status, 0) + row["uncertain"]
            )
    return progress


def dispatches_of(slug: str | None) -> list[Dispatch]:
    """The dispatches ``dispatch_status`` reports on: the publication's (newest first), or,
    with no slug, every dispatch still planning or sending, else the newest one."""
    dispatches = Dispatch.objects.select_related("publication").order_by("-created_at", "-pk")
    if slug:
        publication = Publication.objects.filter(slug=slug).first()
        if publication is None:
            return []
        return list(dispatches.filter(publication=publication))
    active = list(dispatches.exclude(status=Dispatch.Status.DONE))
    if active:
        return active
    return list(dispatches[:1])
