"""Subscriber growth and churn by week (subscribers.growth): counted overall and per topic,
recounted incrementally by the hourly task, read by the admin page and
``GET /api/v1/stats/subscribers/``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client
from django_q.models import Schedule
from time_machine import TimeMachineFixture

from publishing.models import Topic
from subscribers import growth
from subscribers.models import GrowthWeek, Subscriber
from tests.api.conftest import ApiClient, KeyMaker
from tests.api.conftest import make_key as make_key  # a fixture, used by name
from tests.factories import SubscriberFactory, SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db

# A Wednesday: its week starts on Monday 2026-11-16 (the site's zone is UTC in the tests).
NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
THIS_WEEK = date(2026, 11, 16)
LAST_WEEK = date(2026, 11, 9)


def reader(topic: Topic, confirmed: datetime, unsubscribed: datetime | None = None) -> Subscriber:
    subscriber = SubscriberFactory.create(
        confirmed_at=confirmed,
        unsubscribed_at=unsubscribed,
        status=Subscriber.Status.UNSUBSCRIBED if unsubscribed else Subscriber.Status.ACTIVE,
    )
    subscription = SubscriptionFactory.create(subscriber=subscriber, topic=topic)
    type(subscription).objects.filter(pk=subscription.pk).update(created_at=confirmed)
    return subscriber


@pytest.fixture
def people(news: Topic, events: Topic) -> None:
    reader(news, NOW - timedelta(days=1))  # joined this week
    reader(news, NOW - timedelta(days=8))  # joined last week
    reader(events, NOW - timedelta(days=9), unsubscribed=NOW - timedelta(days=2))  # both
    reader(news, NOW - timedelta(days=30), unsubscribed=NOW - timedelta(hours=1))


def test_weeks_count_joined_and_left_overall_and_per_topic(
    people: None, news: Topic, events: Topic
) -> None:
    assert growth.refresh(NOW) > 0

    overall = growth.weeks(count=3, now=NOW)
    assert [(w.week, w.joined, w.left) for w in overall] == [
        (date(2026, 11, 2), 0, 0),
        (LAST_WEEK, 2, 0),
        (THIS_WEEK, 1, 2),
    ]
    assert overall[-1].net == -1
    by_news = growth.weeks(topic=news, count=2, now=NOW)
    assert [(w.joined, w.left) for w in by_news] == [(1, 0), (1, 1)]
    by_events = growth.weeks(topic=events, count=2, now=NOW)
    assert [(w.joined, w.left) for w in by_events] == [(1, 0), (0, 1)]
    # The first refresh filled every week since the first subscriber, four weeks back.
    assert GrowthWeek.objects.filter(topic=None, week=date(2026, 10, 19), joined=1).exists()


def test_later_refreshes_recount_only_the_weeks_that_can_change(people: None, news: Topic) -> None:
    growth.refresh(NOW)
    old = GrowthWeek.objects.get(topic=None, week=date(2026, 10, 19))
    reader(news, NOW + timedelta(hours=2))  # a new confirmation, this week

    growth.refresh(NOW + timedelta(hours=3))

    assert growth.weeks(count=1, now=NOW)[0].joined == 2
    assert GrowthWeek.objects.get(topic=None, week=date(2026, 10, 19)).pk == old.pk  # untouched


def test_the_api_returns_weeks_for_all_or_one_topic_and_names_bad_input(
    people: None, make_key: KeyMaker, time_machine: TimeMachineFixture
) -> None:
    growth.refresh(NOW)
    api = ApiClient(make_key("subscribers:read"))
    time_machine.move_to(NOW)

    overall = api.get("/api/v1/stats/subscribers/", {"weeks": 2})
    assert overall.status_code == 200
    assert overall.json() == {
        "topic": None,
        "weeks": [
            {"week": "2026-11-09", "joined": 2, "left": 0, "net": 2},
            {"week": "2026-11-16", "joined": 1, "left": 2, "net": -1},
        ],
    }
    news = api.get("/api/v1/stats/subscribers/", {"topic": "news", "weeks": 1}).json()
    assert news["weeks"] == [{"week": "2026-11-16", "joined": 1, "left": 1, "net": 0}]
    assert len(api.get("/api/v1/stats/subscribers/").json()["weeks"]) == 12

    unknown = api.get("/api/v1/stats/subscribers/", {"topic": "nope"})
    assert unknown.status_code == 400
    assert [e["field"] for e in unknown.json()["errors"]] == ["topic"]
    too_many = api.get("/api/v1/stats/subscribers/", {"weeks": 105})
    assert too_many.status_code == 400
    assert [e["field"] for e in too_many.json()["errors"]] == ["weeks"]
    assert ApiClient(make_key("publications:read")).get(
        "/api/v1/stats/subscribers/"
    ).status_code in (
        403,
        404,
    )


def test_the_admin_page_shows_the_weeks_and_the_task_is_scheduled(
    people: None, client: Client, time_machine: TimeMachineFixture
) -> None:
    growth.refresh(NOW)
    time_machine.move_to(NOW)
    client.force_login(UserFactory.create(is_superuser=True))

    page = client.get("/admin/subscribers/subscriber/growth/")
    assert page.status_code == 200
    content = page.content.decode()
    assert '<strong id="growth-joined">4</strong>' in content
    assert '<strong id="growth-left">2</strong>' in content
    assert '<td>2026-11-16</td><td class="num">1</td><td class="num">2</td>' in content
    by_topic = client.get("/admin/subscribers/subscriber/growth/", {"topic": "events"})
    assert "Growth and churn: Events" in by_topic.content.decode()
    schedule = Schedule.objects.get(name="subscribers.refresh_growth")
    assert (schedule.func, schedule.schedule_type) == ("subscribers.tasks.refresh_growth", "H")
