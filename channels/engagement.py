"""Honest counting: each open and click event classified human, proxy or machine, with the rule
that decided kept as its reason (decision 0078; every rule and its source in docs/analytics.md).

Events are classified in bulk by a periodic task, not when they arrive: the tracking request
stays one INSERT, and rules that look at a delivery's other events ("many links at once")
see the whole burst, because only events older than ENGAGEMENT_SETTLE_SECONDS are judged.
The address an event came from is cleared once it is classified.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from ua_parser import parse

from channels import analytics, tracking_buffer
from channels.models import Delivery, EngagementEvent
from events import recorder
from events.models import EventType

logger = logging.getLogger(__name__)

HUMAN = EngagementEvent.Verdict.HUMAN
PROXY = EngagementEvent.Verdict.PROXY
MACHINE = EngagementEvent.Verdict.MACHINE

#: ua-parser's families of mail providers' image proxies: an open they fetch says the message
#: reached the mailbox, not that a person looked at it.
PROXY_FAMILIES = {"GmailImageProxy": "gmail_image_proxy", "YahooMailProxy": "yahoo_mail_proxy"}
#: ua-parser's families of HTTP libraries and headless browsers: programs, not mail readers.
AUTOMATION_FAMILIES = frozenset(
    {
        "Python Requests",
        "Python-urllib",
        "curl",
        "Wget",
        "Go-http-client",
        "Java",
        "okhttp",
        "Apache-HttpClient",
        "axios",
        "HeadlessChrome",
        "PhantomJS",
    }
)
#: Apple's own address block (ARIN: 17.0.0.0/8), from which Mail Privacy Protection fetches
#: every image of a message when it is delivered, with the bare user agent "Mozilla/5.0".
APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
APPLE_MPP_USER_AGENT = "Mozilla/5.0"


@dataclass(frozen=True)
class Verdict:
    verdict: str
    reason: str


@dataclass(frozen=True)
class EventFacts:
    """What the rules read of one event and its delivery."""

    pk: int
    delivery_id: int
    kind: str
    link_index: int | None
    occurred_at: datetime
    method: str
    user_agent: str
    ip: str | None
    sent_at: datetime | None


@lru_cache(maxsize=4096)
def _families(user_agent: str) -> tuple[str, str]:
    """(browser family, device family) as ua-parser names them ("" when it knows none)."""
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else ""
    device = result.device.family if result.device else ""
    return browser, device


def _networks(entries: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def _in(ip: str | None, networks: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in networks)


def judge_alone(event: EventFacts) -> Verdict | None:
    """The rules that need nothing but the event itself, in order; None when none applies."""
    if event.method == "HEAD":
        return Verdict(MACHINE, "head_request")
    user_agent = event.user_agent.strip()
    if not user_agent:
        return Verdict(MACHINE, "no_user_agent")
    browser, device = _families(user_agent)
    if event.kind == EngagementEvent.Kind.OPEN:
        if browser in PROXY_FAMILIES:
            return Verdict(PROXY, PROXY_FAMILIES[browser])
        if user_agent == APPLE_MPP_USER_AGENT and _in(event.ip, (APPLE_NETWORK,)):
            return Verdict(PROXY, "apple_mail_privacy_protection")
    if device == "Spider":
        return Verdict(MACHINE, "bot_user_agent")
    if browser in AUTOMATION_FAMILIES:
        return Verdict(MACHINE, "automation_client")
    return None


def classify(events: Sequence[EventFacts], context: Sequence[EventFacts]) -> dict[int, Verdict]:
    """Verdicts for ``events``; ``context`` holds every event of their deliveries (themselves
    included), for the rules that compare an event with the delivery's others."""
    too_soon = timedelta(seconds=settings.ENGAGEMENT_TOO_SOON_SECONDS)
    burst = timedelta(seconds=settings.ENGAGEMENT_BURST_SECONDS)
    scanners = _networks(settings.ENGAGEMENT_SCANNER_NETWORKS)
    by_delivery: dict[int, list[EventFacts]] = defaultdict(list)
    for other in context:
        by_delivery[other.delivery_id].append(other)
    verdicts: dict[int, Verdict] = {}
    for event in events:
        verdict = judge_alone(event)
        if (
            verdict is None
            and event.sent_at is not None
            and event.occurred_at - event.sent_at < too_soon
        ):
            verdict = Verdict(MACHINE, "too_soon_after_delivery")
        siblings = by_delivery[event.delivery_id]
        if verdict is None and event.kind == EngagementEvent.Kind.CLICK:
            links = {
                other.link_index
                for other in siblings
                if other.kind == EngagementEvent.Kind.CLICK
                and abs(other.occurred_at - event.occurred_at) <= burst
            }
            if len(links) >= settings.ENGAGEMENT_BURST_LINKS:
                verdict = Verdict(MACHINE, "many_links_at_once")
        if (
            verdict is None
            and event.kind == EngagementEvent.Kind.CLICK
            and _in(event.ip, scanners)
            and not any(
                other.kind == EngagementEvent.Kind.OPEN and other.occurred_at <= event.occurred_at
                for other in siblings
            )
        ):
            verdict = Verdict(MACHINE, "scanner_network_without_open")
        verdicts[event.pk] = verdict or Verdict(HUMAN, "human")
    return verdicts


FACT_COLUMNS = (
    "pk",
    "delivery_id",
    "kind",
    "link_index",
    "occurred_at",
    "method",
    "user_agent",
    "ip",
    "delivery__sent_at",
)


def classify_pending(now: datetime | None = None, limit: int = 2000) -> int:
    """Classify up to ``limit`` pending events that have settled; returns how many.

    The events are locked (SKIP LOCKED), so two workers never judge the same one; the
    delivery's other events are read in one query; verdicts are written in one UPDATE per
    verdict and reason, with the address cleared, and folded into the aggregates
    (channels.analytics) in the same transaction.
    """
    now = now or timezone.now()
    settled = now - timedelta(seconds=settings.ENGAGEMENT_SETTLE_SECONDS)
    with transaction.atomic():
        pending = [
            EventFacts(*values)
            for values in EngagementEvent.objects.filter(verdict="", occurred_at__lte=settled)
            .order_by("pk")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list(*FACT_COLUMNS)[:limit]
        ]
        if not pending:
            return 0
        deliveries = {event.delivery_id for event in pending}
        context = [
            EventFacts(*values)
            for values in EngagementEvent.objects.filter(delivery_id__in=deliveries).values_list(
                *FACT_COLUMNS
            )
        ]
        verdicts = classify(pending, context)
        groups: dict[Verdict, list[int]] = defaultdict(list)
        for pk, verdict in verdicts.items():
            groups[verdict].append(pk)
        for verdict, pks in groups.items():
            EngagementEvent.objects.filter(pk__in=pks).update(
                verdict=verdict.verdict, reason=verdict.reason, ip=None
            )
        analytics.tally(
            [
                analytics.Judged(
                    event.delivery_id,
                    event.kind,
                    event.link_index,
                    event.occurred_at,
                    verdicts[event.pk].verdict,
                )
                for event in pending
            ]
        )
        record_engagement_events(pending, verdicts)
    return len(pending)


ENGAGEMENT_EVENT_TYPES = {
    EngagementEvent.Kind.OPEN: EventType.DELIVERY_OPENED,
    EngagementEvent.Kind.CLICK: EventType.DELIVERY_CLICKED,
}


def record_engagement_events(events: Sequence[EventFacts], verdicts: dict[int, Verdict]) -> int:
    """``delivery.opened`` and ``delivery.clicked`` for judged events, in the classifier's
    transaction (decision 0084): a person's for every endpoint that wants them, a machine's
    or a proxy's only for those asking for machine events too. Returns how many."""
    wanted = recorder.listened()
    if not wanted & {str(t) for t in ENGAGEMENT_EVENT_TYPES.values()} and not any(
        key.endswith(recorder.MACHINE_SUFFIX) for key in wanted
    ):
        return 0
    owners = dict(
        Delivery.objects.filter(pk__in={event.delivery_id for event in events}).values_list(
            "pk", "subscriber_id"
        )
    )
    return len(
        recorder.record_many(
            (
                recorder.NewEvent(
                    ENGAGEMENT_EVENT_TYPES[EngagementEvent.Kind(event.kind)],
                    {
                        "delivery_id": event.delivery_id,
                        "subscriber_id": owners.get(event.delivery_id),
                        "link_index": event.link_index,
                        "verdict": verdicts[event.pk].verdict,
                        "reason": verdicts[event.pk].reason,
                    },
                    subscriber_id=owners.get(event.delivery_id),
                    is_machine=verdicts[event.pk].verdict != HUMAN,
                    occurred_at=event.occurred_at,
                )
                for event in events
            ),
            wanted=wanted,
        )
    )


def classify_for_a_while(seconds: float = 50.0) -> int:
    """The periodic task's body: move buffered hits into the table, then classify settled
    events until none is left or time is up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and tracking_buffer.move():
        pass  # the buffered hits first, so that they are judged with the rest
    total = 0
    while time.monotonic() < deadline:
        done = classify_pending()
        total += done
        if not done:
            break
    if total:
        logger.info("engagement: %s events classified", total)
    return total
