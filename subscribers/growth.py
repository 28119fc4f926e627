"""Subscriber growth and churn by week, overall and per topic (``GrowthWeek``).

A week runs Monday to Sunday in the site's time zone. *Joined*: subscribers confirmed that week
(per topic: their subscriptions to it, counted in the week of the later of the subscription and
the confirmation). *Left*: subscribers who unsubscribed that week (per topic: those who had it).
Erased subscribers leave no trace to count, and a topic dropped in the preference center is not
counted as leaving (the subscription row is gone); both are said in docs/analytics.md.

``refresh`` recounts the weeks that can still change (by default this week and the one before)
with a few grouped queries and replaces their rows: a periodic task runs it every hour, and the
first run fills every week since the first subscriber. Reading (``weeks``) touches only
``GrowthWeek``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, F, Min
from django.db.models.functions import Greatest, TruncWeek
from django.utils import timezone

from publishing.models import Topic
from subscribers.models import GrowthWeek, Subscriber, Subscription

logger = logging.getLogger(__name__)

#: Weeks a refresh recounts when the table already holds some: this one and the one before
#: (a confirmation or an unsubscribe is always recorded at the time it happens).
RECOUNT_WEEKS = 2


def monday(moment: datetime | date) -> date:
    """The Monday of the week ``moment`` falls in, in the site's time zone."""
    day = timezone.localtime(moment).date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def _start(week: date) -> datetime:
    return timezone.make_aware(datetime.combine(week, time.min))


Counts = dict[tuple[date, int | None], list[int]]


def _count(since: date) -> Counts:
    """(week, topic or None) -> [joined, left], for every week from ``since``: four grouped
    queries (TruncWeek in the site's time zone), whatever the number of subscribers."""
    start = _start(since)
    counts: Counts = defaultdict(lambda: [0, 0])
    subscribers = Subscriber.objects.order_by()
    subscriptions = Subscription.objects.order_by()
    queries = [
        (0, subscribers.filter(confirmed_at__gte=start), "confirmed_at", None),
        (1, subscribers.filter(unsubscribed_at__gte=start), "unsubscribed_at", None),
        (
            0,
            subscriptions.filter(subscriber__confirmed_at__isnull=False)
            .alias(joined_at=Greatest(F("created_at"), F("subscriber__confirmed_at")))
            .filter(joined_at__gte=start),
            "joined_at",
            "topic_id",
        ),
        (
            1,
            subscriptions.filter(subscriber__unsubscribed_at__gte=start),
            "subscriber__unsubscribed_at",
            "topic_id",
        ),
    ]
    for column, queryset, moment, topic in queries:
        grouped = queryset.annotate(week=TruncWeek(moment)).values("week")
        if topic:
            grouped = grouped.annotate(topic=F(topic)).values("week", "topic")
        for row in grouped.annotate(total=Count("pk")):
            week = monday(row["week"])
            counts[(week, row.get("topic"))][column] += row["total"]
    return counts


def refresh(now: datetime | None = None, *, weeks: int | None = None) -> int:
    """Recount the last ``weeks`` weeks (RECOUNT_WEEKS, or every week when the table is empty)
    and replace their rows in one transaction. Returns the number of rows written."""
    now = now or timezone.now()
    if weeks is None and not GrowthWeek.objects.exists():
        bounds = Subscriber.objects.aggregate(
            created=Min("created_at"), confirmed=Min("confirmed_at")
        )
        known = [moment for moment in bounds.values() if moment is not None]
        since = monday(min(known)) if known else monday(now)
    else:
        since = monday(now) - timedelta(weeks=(weeks or RECOUNT_WEEKS) - 1)
    counts = _count(since)
    rows = [
        GrowthWeek(week=week, topic_id=topic_id, joined=joined, left=left)
        for (week, topic_id), (joined, left) in sorted(
            counts.items(), key=lambda item: (item[0][0], item[0][1] or 0)
        )
    ]
    with transaction.atomic():
        GrowthWeek.objects.filter(week__gte=since).delete()
        GrowthWeek.objects.bulk_create(rows)
    logger.info("subscribers: growth recounted from %s (%s rows)", since, len(rows))
    return len(rows)


@dataclass(frozen=True)
class Week:
    week: date
    joined: int
    left: int

    @property
    def net(self) -> int:
        return self.joined - self.left


def weeks(
    *, topic: Topic | None = None, count: int = 12, now: datetime | None = None
) -> list[Week]:
    """The last ``count`` weeks, oldest first, every week present (zero when nothing happened)."""
    last = monday(now or timezone.now())
    first = last - timedelta(weeks=count - 1)
    stored = {
        row.week: row
        for row in GrowthWeek.objects.filter(week__gte=first, week__lte=last, topic=topic)
    }
    out = []
    for index in range(count):
        week = first + timedelta(weeks=index)
        row = stored.get(week)
        out.append(Week(week, row.joined if row else 0, row.left if row else 0))
    return out
