"""Send-time optimisation: the local hour each subscriber usually reads (decision 0081).

A *read* is a message the subscriber opened or clicked, as judged human by the classifier
(channels.engagement): one per message, at the time of its first human open or click, so a
reader who opens one email five times counts once. Proxy opens (Apple Mail Privacy
Protection, Gmail's image proxy) and machine hits never count: they say when a server fetched
the message, not when a person read it.

A subscriber's *read hour* is the local hour (in their current time zone) that holds the most
of their reads of the last DIGEST_READ_DAYS days, once they have at least DIGEST_READ_MIN of
them; between hours with as many reads, the earliest in the day (the digest is then waiting at
the later one too). Subscribers who opted out of tracking have none. It is stored on the
subscriber (``Subscriber.read_hour``) by a daily task, so choosing who is due every quarter of
an hour reads a column, never the events.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from itertools import groupby

from django.conf import settings
from django.db.models import F, Min
from django.utils import timezone

from channels.models import EngagementEvent
from subscribers.models import Subscriber, zone_named

logger = logging.getLogger(__name__)

UPDATE_CHUNK = 5_000


def best_hour(hours: Iterable[int], minimum: int) -> int | None:
    """The hour (0-23) found most often in ``hours``; the earliest of those tied; None when
    there are fewer than ``minimum`` of them."""
    counts = Counter(hours)
    if sum(counts.values()) < minimum:
        return None
    top = max(counts.values())
    return min(hour for hour, count in counts.items() if count == top)


def read_times(
    since: datetime, subscriber_ids: Iterable[int] | None = None
) -> Iterator[tuple[int, list[int]]]:
    """(subscriber id, the local hours of their reads since ``since``) for each subscriber with
    reads, in id order; one grouped query, streamed. Opted-out subscribers are left out."""
    events = EngagementEvent.objects.filter(
        verdict=EngagementEvent.Verdict.HUMAN,
        occurred_at__gte=since,
        delivery__subscriber__isnull=False,
        delivery__subscriber__tracking_opt_out=False,
    )
    if subscriber_ids is not None:
        events = events.filter(delivery__subscriber_id__in=list(subscriber_ids))
    rows = (
        events.values("delivery_id")
        .annotate(
            subscriber=F("delivery__subscriber_id"),
            zone=F("delivery__subscriber__timezone"),
            first=Min("occurred_at"),
        )
        .order_by("subscriber", "delivery_id")
        .values_list("subscriber", "zone", "first")
        .iterator(chunk_size=10_000)
    )
    for subscriber_id, group in groupby(rows, key=lambda row: row[0]):
        reads = list(group)
        zone = zone_named(reads[0][1])
        yield subscriber_id, [first.astimezone(zone).hour for _, _, first in reads]


def refresh_read_hours(
    now: datetime | None = None, subscriber_ids: Iterable[int] | None = None
) -> int:
    """Recompute the read hour of every subscriber (or of ``subscriber_ids``) from their reads
    of the last DIGEST_READ_DAYS days before ``now``; returns how many changed. Written with
    UPDATEs grouped by hour (not a preference change: no history, no ``updated_at``)."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.DIGEST_READ_DAYS)
    ids = None if subscriber_ids is None else list(subscriber_ids)
    learned: dict[int, int] = {}
    for subscriber_id, hours in read_times(since, ids):
        hour = best_hour(hours, settings.DIGEST_READ_MIN)
        if hour is not None:
            learned[subscriber_id] = hour
    stored = Subscriber.objects.filter(read_hour__isnull=False)
    if ids is not None:
        stored = stored.filter(pk__in=ids)
    current = dict(stored.values_list("pk", "read_hour"))
    changes: dict[int | None, list[int]] = {}
    for pk in learned.keys() | current.keys():
        if learned.get(pk) != current.get(pk):
            changes.setdefault(learned.get(pk), []).append(pk)
    for hour, pks in changes.items():
        pks.sort()
        for start in range(0, len(pks), UPDATE_CHUNK):
            Subscriber.objects.filter(pk__in=pks[start : start + UPDATE_CHUNK]).update(
                read_hour=hour
            )
    changed = sum(len(pks) for pks in changes.values())
    logger.info("read hours: %s subscribers known, %s changed", len(learned), changed)
    return changed
