"""Honest counting (channels.engagement, docs/analytics.md): each classification rule on
recorded real-world requests (tests/fixtures/engagement/samples.json: user agents and
timings), bulk classification that waits for a burst to settle and clears addresses, and the
periodic task that runs it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django_q.models import Schedule

from channels import engagement
from channels.models import Delivery, EngagementEvent
from tests.factories.channels import DeliveryFactory
from tests.fixtures import provider_json

pytestmark = pytest.mark.django_db

SENT = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SAMPLES: list[dict[str, Any]] = provider_json("engagement", "samples")["deliveries"]


def seed(sample: dict[str, Any]) -> list[tuple[EngagementEvent, tuple[str, str]]]:
    delivery = DeliveryFactory.create(status=Delivery.Status.SENT, sent_at=SENT)
    seeded = []
    for event in sample["events"]:
        row = EngagementEvent.objects.create(
            delivery=delivery,
            kind=event["kind"],
            link_index=event.get("link"),
            occurred_at=SENT + timedelta(seconds=event["after"]),
            method=event["method"],
            user_agent=event["user_agent"],
            ip=event["ip"],
        )
        seeded.append((row, tuple(event["expect"])))
    return seeded


@pytest.mark.parametrize("sample", SAMPLES, ids=[sample["name"] for sample in SAMPLES])
def test_each_rule_on_recorded_requests(sample: dict[str, Any]) -> None:
    seeded = seed(sample)

    assert engagement.classify_pending(now=SENT + timedelta(days=1)) == len(seeded)

    for row, expected in seeded:
        row.refresh_from_db()
        assert (row.verdict, row.reason) == expected, row.user_agent
        assert row.ip is None  # the address is dropped once the event is judged


def test_every_rule_and_verdict_is_exercised_by_the_samples() -> None:
    reasons = {tuple(e["expect"]) for sample in SAMPLES for e in sample["events"]}
    assert {reason for _, reason in reasons} == {
        "human",
        "gmail_image_proxy",
        "yahoo_mail_proxy",
        "apple_mail_privacy_protection",
        "head_request",
        "no_user_agent",
        "bot_user_agent",
        "automation_client",
        "too_soon_after_delivery",
        "many_links_at_once",
        "scanner_network_without_open",
    }


def test_a_burst_is_judged_only_once_it_has_settled(settings: Any) -> None:
    settings.ENGAGEMENT_SETTLE_SECONDS = 30
    burst = next(s for s in SAMPLES if s["name"].startswith("A sandbox opens every link"))
    seeded = seed({"events": burst["events"][:1]})
    first_click = seeded[0][0].occurred_at

    # Ten seconds after the first click, it is left alone: more may come.
    assert engagement.classify_pending(now=first_click + timedelta(seconds=10)) == 0
    for event in burst["events"][1:]:
        EngagementEvent.objects.create(
            delivery_id=seeded[0][0].delivery_id,
            kind="click",
            link_index=event["link"],
            occurred_at=SENT + timedelta(seconds=event["after"]),
            method="GET",
            user_agent=event["user_agent"],
        )
    assert engagement.classify_pending(now=first_click + timedelta(seconds=60)) == 3
    assert set(EngagementEvent.objects.values_list("verdict", "reason")) == {
        ("machine", "many_links_at_once")
    }


def test_classified_events_are_not_judged_again_and_the_task_is_scheduled() -> None:
    seed(SAMPLES[0])
    assert engagement.classify_for_a_while(seconds=5) == 1
    assert engagement.classify_for_a_while(seconds=5) == 0
    schedule = Schedule.objects.get(name="channels.classify_engagement")
    assert (schedule.func, schedule.minutes) == ("channels.tasks.classify_engagement", 1)
