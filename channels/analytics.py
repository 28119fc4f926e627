"""Engagement aggregates, kept as events are classified (decision 0078): a row per engaged
delivery (``DeliveryEngagement``) and running counters per publication
(``EngagementCounter``: clicks per link, opens and clicks per hour after sending). Reading a
publication's funnel, links and first 72 hours touches those rows, never the events, so the
analytics page stays fast however many events there are.

Definitions (docs/analytics.md): *opened by humans* counts deliveries with a human open or a
human click (a click on a message whose images were blocked is an open all the same);
*clicked by humans* counts deliveries with a human click; proxy opens and machine hits are
counted apart. *Unsubscribed after it* counts recipients who unsubscribed within
ANALYTICS_UNSUBSCRIBE_DAYS of the first send.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min, Q, Sum

from channels.models import (
    Delivery,
    DeliveryEngagement,
    EngagementCounter,
    EngagementEvent,
    SesFeedback,
    TrackedLink,
)
from channels.tracking import CLICK_TRACKED_BROADCASTS, EMAIL, translated_surface

HOURS = 72
OPEN = EngagementEvent.Kind.OPEN
HUMAN = EngagementEvent.Verdict.HUMAN
PROXY = EngagementEvent.Verdict.PROXY


@dataclass(frozen=True)
class Judged:
    """One classified event, as the tally needs it."""

    delivery_id: int
    kind: str
    link_index: int | None
    occurred_at: datetime
    verdict: str


def tally(events: Sequence[Judged]) -> None:
    """Fold classified events into the aggregates (inside the classifier's transaction).

    Each delivery's row is locked while it changes, so two classifiers judging events of one
    delivery count its first open once.
    """
    ids = {event.delivery_id for event in events}
    info = {
        pk: (publication_id, version_id, sent_from, _surface(kind, language, pins))
        for pk, publication_id, version_id, sent_from, kind, language, pins in (
            Delivery.objects.filter(pk__in=ids, dispatch__isnull=False).values_list(
                "pk",
                "dispatch__publication_id",
                "dispatch__version_id",
                "dispatch__created_at",
                "channel__kind",
                "language",
                "dispatch__translation_versions",
            )
        )
    }
    DeliveryEngagement.objects.bulk_create(
        [DeliveryEngagement(delivery_id=pk, publication_id=info[pk][0]) for pk in info],
        ignore_conflicts=True,
    )
    rows = {
        row.pk: row
        for row in DeliveryEngagement.objects.select_for_update().filter(pk__in=list(info))
    }
    counters: Counter[tuple[int, str, str]] = Counter()
    for event in sorted(events, key=lambda judged: judged.occurred_at):
        if event.delivery_id not in rows:
            continue
        publication_id, version_id, sent_from, surface = info[event.delivery_id]
        _count(rows[event.delivery_id], event, counters, publication_id)
        if event.kind != OPEN and event.link_index is not None and event.verdict != PROXY:
            link = f"{version_id}:{surface}:{event.link_index}"
            counters[(publication_id, f"link_{_who(event.verdict)}", link)] += 1
        hour = int((event.occurred_at - sent_from).total_seconds() // 3600)
        if 0 <= hour < HOURS:
            counters[(publication_id, f"hour_{event.kind}_{_who(event.verdict)}", str(hour))] += 1
    DeliveryEngagement.objects.bulk_update(
        list(rows.values()),
        [
            "first_human_open_at",
            "first_human_click_at",
            "first_proxy_open_at",
            "human_opens",
            "human_clicks",
            "proxy_opens",
            "machine_opens",
            "machine_clicks",
        ],
    )
    _increment(counters)


def _surface(kind: str, language: str, pins: dict[str, int] | None) -> str:
    """The surface a delivery's links were stored under: its broadcast kind, or the email's,
    that of the translation it carried (decision 0082) apart."""
    if kind in CLICK_TRACKED_BROADCASTS:
        return kind
    return translated_surface(EMAIL, (pins or {}).get(language) if language else None)


def _who(verdict: str) -> str:
    return "human" if verdict == HUMAN else "proxy" if verdict == PROXY else "machine"


def _count(
    row: DeliveryEngagement,
    event: Judged,
    counters: Counter[tuple[int, str, str]],
    publication_id: int,
) -> None:
    """One event into its delivery's row; the first human open or click of a delivery (and its
    first proxy open) also counts once for the publication."""
    if event.verdict == HUMAN:
        if event.kind == OPEN:
            row.human_opens += 1
        else:
            row.human_clicks += 1
            if row.first_human_click_at is None:
                row.first_human_click_at = event.occurred_at
                counters[(publication_id, "clicked_human", "")] += 1
        if row.first_human_open_at is None:
            row.first_human_open_at = event.occurred_at
            counters[(publication_id, "opened_human", "")] += 1
    elif event.verdict == PROXY:
        row.proxy_opens += 1
        if row.first_proxy_open_at is None:
            row.first_proxy_open_at = event.occurred_at
            counters[(publication_id, "opened_proxy", "")] += 1
    elif event.kind == OPEN:
        row.machine_opens += 1
    else:
        row.machine_clicks += 1


def _increment(counters: Counter[tuple[int, str, str]]) -> None:
    """Add to the counters in one statement (INSERT ... ON CONFLICT DO UPDATE)."""
    if not counters:
        return
    meta = EngagementCounter._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    # The fields keep their names as columns (no db_column).
    metric, key, count = (quote(name) for name in ("metric", "key", "count"))
    rows = ", ".join(["(%s, %s, %s, %s)"] * len(counters))
    sql = (
        f"INSERT INTO {table} (publication_id, {metric}, {key}, {count}) "  # noqa: S608
        f"VALUES {rows} ON CONFLICT (publication_id, {metric}, {key}) "
        f"DO UPDATE SET {count} = {table}.{count} + EXCLUDED.{count}"
    )
    params: list[Any] = []
    for (publication_id, name, item), value in sorted(counters.items()):
        params.extend([publication_id, name, item, value])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@dataclass
class Funnel:
    """A publication from targeted to unsubscribed; machines and proxies apart."""

    targeted: int = 0
    sent: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    opened_human: int = 0
    clicked_human: int = 0
    unsubscribed_after: int = 0
    opened_proxy: int = 0
    human_opens: int = 0
    human_clicks: int = 0
    machine_opens: int = 0
    machine_clicks: int = 0

    def rate(self, count: int) -> float | None:
        """``count`` as a share of delivered messages (None before any is delivered)."""
        return round(count / self.delivered, 4) if self.delivered else None


@dataclass
class LinkClicks:
    version_id: int
    surface: str
    index: int
    url: str
    human: int = 0
    machine: int = 0


@dataclass
class Analytics:
    funnel: Funnel
    links: list[LinkClicks] = field(default_factory=list)
    #: Per hour after the first send (0 to 71): human opens, human clicks, proxy opens,
    #: machine hits.
    hours: dict[str, list[int]] = field(default_factory=dict)


def funnel(publication_id: int) -> Funnel:
    """The funnel from the ledger (one aggregate over the publication's deliveries), the
    feedback table and the engagement rows (one aggregate over engaged deliveries)."""
    deliveries = Delivery.objects.filter(
        dispatch__publication_id=publication_id,
        kind__in=[Delivery.Kind.SUBSCRIBER, Delivery.Kind.BROADCAST],
    )
    ledger = deliveries.aggregate(
        targeted=Count("pk"),
        sent=Count("pk", filter=Q(status=Delivery.Status.SENT)),
        first_send=Min("dispatch__created_at"),
    )
    feedback = SesFeedback.objects.filter(
        delivery__dispatch__publication_id=publication_id
    ).aggregate(
        bounced=Count(
            "delivery", filter=Q(type=SesFeedback.Type.BOUNCE, subtype="Permanent"), distinct=True
        ),
        complained=Count("delivery", filter=Q(type=SesFeedback.Type.COMPLAINT), distinct=True),
    )
    engaged = DeliveryEngagement.objects.filter(publication_id=publication_id).aggregate(
        opened_human=Count("pk", filter=Q(first_human_open_at__isnull=False)),
        clicked_human=Count("pk", filter=Q(first_human_click_at__isnull=False)),
        opened_proxy=Count("pk", filter=Q(first_proxy_open_at__isnull=False)),
        human_opens=Sum("human_opens", default=0),
        human_clicks=Sum("human_clicks", default=0),
        machine_opens=Sum("machine_opens", default=0),
        machine_clicks=Sum("machine_clicks", default=0),
    )
    unsubscribed = 0
    if ledger["first_send"] is not None:
        window = timedelta(days=settings.ANALYTICS_UNSUBSCRIBE_DAYS)
        unsubscribed = (
            deliveries.filter(
                subscriber__unsubscribed_at__gte=ledger["first_send"],
                subscriber__unsubscribed_at__lt=ledger["first_send"] + window,
            )
            .values("subscriber_id")
            .distinct()
            .count()
        )
    bounced = feedback["bounced"]
    return Funnel(
        targeted=ledger["targeted"],
        sent=ledger["sent"],
        delivered=max(ledger["sent"] - bounced, 0),
        bounced=bounced,
        complained=feedback["complained"],
        unsubscribed_after=unsubscribed,
        **engaged,
    )


def analytics(publication_id: int) -> Analytics:
    """Everything the analytics page and the stats API show for one publication."""
    counters = EngagementCounter.objects.filter(publication_id=publication_id).values_list(
        "metric", "key", "count"
    )
    links: dict[str, LinkClicks] = {}
    hours: dict[str, list[int]] = {
        name: [0] * HOURS for name in ("opens_human", "clicks_human", "opens_proxy", "machine")
    }
    series = {
        "hour_open_human": "opens_human",
        "hour_click_human": "clicks_human",
        "hour_open_proxy": "opens_proxy",
        "hour_open_machine": "machine",
        "hour_click_machine": "machine",
    }
    for metric, key, count in counters:
        if metric in ("link_human", "link_machine"):
            version_id, surface, index = key.split(":")
            link = links.setdefault(key, LinkClicks(int(version_id), surface, int(index), url=""))
            if metric == "link_human":
                link.human += count
            else:
                link.machine += count
        elif metric in series:
            hours[series[metric]][int(key)] += count
    _link_urls(list(links.values()))
    ordered = sorted(links.values(), key=lambda link: (-link.human, link.version_id, link.index))
    return Analytics(funnel=funnel(publication_id), links=ordered, hours=hours)


def _link_urls(links: list[LinkClicks]) -> None:
    if not links:
        return
    condition = Q()
    for link in links:
        condition |= Q(version_id=link.version_id, surface=link.surface, index=link.index)
    urls = {
        (version_id, surface, index): url
        for version_id, surface, index, url in TrackedLink.objects.filter(condition).values_list(
            "version_id", "surface", "index", "url"
        )
    }
    for link in links:
        link.url = urls.get((link.version_id, link.surface, link.index), "")
