"""Exporting subscribers as CSV, streamed in bounded memory: to a file (the
``export_subscribers`` command) or line by line (the admin's download). The file imports back
with subscribers.imports (same column names)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import TextIO

from django.db.models import Prefetch

from subscribers.models import Subscriber, Subscription

EXPORT_COLUMNS = (
    "email",
    "name",
    "status",
    "locale",
    "timezone",
    "email_format",
    "source",
    "created_at",
    "confirmed_at",
    "topics",
)


class _Echo:
    def write(self, value: str) -> str:
        return value


def export_rows(status: str | None = None) -> Iterator[list[str]]:
    """Every subscriber as CSV cells (header first), read in chunks of 2,000."""
    yield list(EXPORT_COLUMNS)
    queryset = Subscriber.objects.order_by("pk").prefetch_related(
        Prefetch("subscriptions", queryset=Subscription.objects.select_related("topic"))
    )
    if status:
        queryset = queryset.filter(status=status)
    for subscriber in queryset.iterator(chunk_size=2000):
        yield [
            subscriber.email,
            subscriber.name,
            subscriber.status,
            subscriber.locale,
            subscriber.timezone,
            subscriber.email_format,
            subscriber.source,
            subscriber.created_at.isoformat(),
            subscriber.confirmed_at.isoformat() if subscriber.confirmed_at else "",
            " ".join(sorted(s.topic.slug for s in subscriber.subscriptions.all())),
        ]


def export_lines(status: str | None = None) -> Iterator[str]:
    """The export as CSV text, one line at a time (for a streaming HTTP response)."""
    writer = csv.writer(_Echo())
    for cells in export_rows(status):
        yield writer.writerow(cells)


def export_subscribers(out: TextIO, status: str | None = None) -> int:
    """Write every subscriber (optionally of one status) as CSV to ``out``; returns rows written.

    The file imports back with import_subscribers (same column names).
    """
    writer = csv.writer(out)
    count = -1
    for cells in export_rows(status):
        writer.writerow(cells)
        count += 1
    return count
