"""Send-time optimisation (channels.read_hours, decision 0081) on fixed engagement data: which
events count (human opens and clicks, one per message; never proxies or machines), the
threshold, the window, ties, the reader's zone, their opt-out and their explicit choice; and
that a learned hour moves the digest without a day getting two."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine

from channels import engagement, read_hours, tasks
from channels.models import Channel, Delivery, Digest, EngagementEvent
from publishing.models import Topic
from subscribers import services as subscriber_services
from subscribers.models import DigestTime, Subscriber
from tests.channels.conftest import SmtpSink
from tests.channels.digests_support import DAILY, publish, run, subscriber
from tests.factories.channels import DeliveryFactory

pytestmark = pytest.mark.django_db

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)


def message(reader: Subscriber, sent: dt.datetime) -> Delivery:
    return DeliveryFactory.create(
        subscriber=reader, recipient=reader.email, status=Delivery.Status.SENT, sent_at=sent
    )


def read(
    reader: Subscriber, when: dt.datetime, *, times: int = 1, verdict: str = "human"
) -> Delivery:
    """A message sent an hour before ``when`` and opened ``times`` at ``when`` (already judged
    ``verdict``)."""
    delivery = message(reader, when - dt.timedelta(hours=1))
    for _ in range(times):
        EngagementEvent.objects.create(
            delivery=delivery,
            kind="open",
            occurred_at=when,
            method="GET",
            user_agent=IPHONE,
            verdict=verdict,
            reason=verdict,
        )
    return delivery


def days_ago(days: int, hour: int, minute: int = 10) -> dt.datetime:
    return (NOW - dt.timedelta(days=days)).replace(hour=hour, minute=minute)


def learned(reader: Subscriber) -> int | None:
    read_hours.refresh_read_hours(NOW)
    reader.refresh_from_db()
    return reader.read_hour


@pytest.fixture
def reader(topic: Topic) -> Subscriber:
    return subscriber(topic, DAILY, "reader", timezone="UTC")


def test_only_human_opens_and_clicks_count_as_judged_by_the_classifier(
    topic: Topic, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 5
    paris = subscriber(topic, DAILY, "paris", timezone="Europe/Paris")
    # Five messages read by a person: three around 07:00 in Paris (06:xx UTC), two at 19:00.
    raw: list[tuple[Delivery, dt.timedelta, str, str, str, str]] = []
    for day, hour in ((1, 6), (2, 6), (3, 6), (4, 18), (5, 18)):
        sent = days_ago(day, hour, 0) - dt.timedelta(hours=2)
        delivery = message(paris, sent)
        opened = days_ago(day, hour, 20) - sent
        raw.append((delivery, opened, "open", "GET", IPHONE, "203.0.113.20"))
        raw.append((delivery, opened + dt.timedelta(seconds=40), "click", "GET", IPHONE, ""))
        # Apple Mail Privacy Protection fetched the pixel on delivery, at 03:00 UTC-ish.
        raw.append((delivery, dt.timedelta(seconds=30), "open", "GET", "Mozilla/5.0", "17.58.1.4"))
    # Machines busy at noon on other messages: a link checker (HEAD), a gateway as the mail
    # lands, a script.
    for day in range(1, 8):
        sent = days_ago(day, 12, 0)
        delivery = message(paris, sent)
        raw.append((delivery, dt.timedelta(minutes=5), "click", "HEAD", DESKTOP, ""))
        raw.append((delivery, dt.timedelta(seconds=2), "click", "GET", DESKTOP, ""))
        raw.append((delivery, dt.timedelta(minutes=9), "open", "GET", "python-requests/2.31", ""))
    for delivery, after, kind, method, user_agent, ip in raw:
        assert delivery.sent_at is not None
        EngagementEvent.objects.create(
            delivery=delivery,
            kind=kind,
            link_index=0 if kind == "click" else None,
            occurred_at=delivery.sent_at + after,
            method=method,
            user_agent=user_agent,
            ip=ip or None,
        )
    while engagement.classify_pending(now=NOW):
        pass
    counted = EngagementEvent.objects.values_list("verdict", flat=True)
    assert sorted(set(counted)) == ["human", "machine", "proxy"]

    assert learned(paris) == 7
    assert paris.digest_time() == DigestTime(7, DigestTime.Reason.LEARNED)


def test_it_needs_the_threshold_of_reads_and_counts_one_per_message(
    reader: Subscriber, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 5
    for day in (1, 2, 3, 4):
        read(reader, days_ago(day, 7))
    # One message opened ten times at 20:00 is one read, not ten.
    read(reader, days_ago(5, 20), times=10)
    assert learned(reader) == 7

    settings.DIGEST_READ_MIN = 6
    assert learned(reader) is None
    assert reader.digest_time() == DigestTime(8, DigestTime.Reason.DEFAULT)


def test_proxy_and_machine_events_never_reach_the_threshold(
    reader: Subscriber, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 3
    for day in range(1, 11):
        read(reader, days_ago(day, 4), verdict="proxy")
        read(reader, days_ago(day, 12), verdict="machine")
    read(reader, days_ago(1, 9))
    read(reader, days_ago(2, 9))
    assert learned(reader) is None
    read(reader, days_ago(3, 9))
    assert learned(reader) == 9


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ([7, 7, 21, 21, 13], 7),  # a tie between 07 and 21: the earlier
        ([21, 21, 6, 6, 6], 6),
        ([23, 23, 0, 0, 12], 0),  # the earliest in the day, midnight included
        ([9, 9, 9, 17, 17], 9),
    ],
)
def test_the_hour_with_the_most_reads_wins_and_a_tie_goes_to_the_earliest(
    reader: Subscriber, settings: Any, hours: list[int], expected: int
) -> None:
    settings.DIGEST_READ_MIN = 5
    for day, hour in enumerate(hours, start=1):
        read(reader, days_ago(day, hour))
    assert learned(reader) == expected
    assert read_hours.best_hour(hours, 5) == expected
    assert read_hours.best_hour(hours, 6) is None


def test_reads_older_than_the_window_are_forgotten(reader: Subscriber, settings: Any) -> None:
    settings.DIGEST_READ_MIN = 3
    settings.DIGEST_READ_DAYS = 30
    for day in (40, 41, 42, 43):
        read(reader, days_ago(day, 6))
    for day in (1, 2, 3):
        read(reader, days_ago(day, 18))
    assert learned(reader) == 18

    settings.DIGEST_READ_DAYS = 90
    assert learned(reader) == 6


def test_the_hour_is_local_to_the_readers_zone(reader: Subscriber, settings: Any) -> None:
    settings.DIGEST_READ_MIN = 3
    for day in (1, 2, 3):
        read(reader, days_ago(day, 2, 40))  # 02:40 UTC is 08:10 in Kolkata
    Subscriber.objects.filter(pk=reader.pk).update(timezone="Asia/Kolkata")
    assert learned(reader) == 8
    Subscriber.objects.filter(pk=reader.pk).update(timezone="America/New_York")
    assert learned(reader) == 22  # the evening before in New York (EDT, UTC-4)


def test_an_opted_out_reader_has_no_read_hour_and_opting_out_forgets_it(
    reader: Subscriber, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 3
    for day in (1, 2, 3):
        read(reader, days_ago(day, 6))
    assert learned(reader) == 6

    subscriber_services.update_preferences(
        reader,
        topics=[s.topic for s in reader.subscriptions.all()],
        frequency=DAILY,
        paused_until=None,
        email_format=reader.email_format,
        origin=subscriber_services.Origin(via="preferences"),
        tracking_opt_out=True,
    )
    reader.refresh_from_db()
    assert reader.read_hour is None
    assert reader.digest_time() == DigestTime(8, DigestTime.Reason.DEFAULT)
    assert learned(reader) is None  # the daily refresh does not learn it again


def test_an_hour_the_reader_chose_wins_over_the_learned_one(
    reader: Subscriber, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 3
    for day in (1, 2, 3):
        read(reader, days_ago(day, 6))
    Subscriber.objects.filter(pk=reader.pk).update(digest_hour=18)
    assert learned(reader) == 6
    assert reader.digest_time() == DigestTime(18, DigestTime.Reason.CHOSEN)


def test_the_daily_task_refreshes_every_reader_and_reports_the_changes(
    topic: Topic, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 2
    early = subscriber(topic, DAILY, "early")
    late = subscriber(topic, DAILY, "late")
    silent = subscriber(topic, DAILY, "silent")
    Subscriber.objects.filter(pk=silent.pk).update(read_hour=11)  # reads that aged out
    for day in (1, 2):
        read(early, days_ago(day, 6))
        read(late, days_ago(day, 22))

    with time_machine.travel(NOW, tick=False):
        assert tasks.refresh_read_hours() == 3
        assert tasks.refresh_read_hours() == 0

    hours = dict(Subscriber.objects.values_list("email", "read_hour"))
    assert hours == {early.email: 6, late.email: 22, silent.email: None}


def test_a_learned_hour_moves_the_digest_without_a_day_getting_two(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, settings: Any
) -> None:
    settings.DIGEST_READ_MIN = 3
    reader = subscriber(topic, DAILY, "learner", timezone="Europe/Paris")
    for day in (1, 2, 3):
        publish(topic, dt.datetime(2026, 3, day + 1, 5, 0, tzinfo=UTC), f"Early {day}")
        publish(topic, dt.datetime(2026, 3, day + 1, 15, 0, tzinfo=UTC), f"Late {day}")
    # Monday 2 March at 08:00 Paris (the default hour): a digest.
    run(dt.datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    # The reader reads at 06:xx Paris; the refresh that night learns it.
    for day in (1, 2, 3):
        read(reader, dt.datetime(2026, 2, 26, 5, 20, tzinfo=UTC) + dt.timedelta(days=day))
    read_hours.refresh_read_hours(dt.datetime(2026, 3, 3, 3, 5, tzinfo=UTC))
    reader.refresh_from_db()
    assert reader.digest_time() == DigestTime(6, DigestTime.Reason.LEARNED)

    # Tuesday: at 06:00 Paris, not 08:00; Wednesday too.
    when = dt.datetime(2026, 3, 2, 7, 15, tzinfo=UTC)
    while when <= dt.datetime(2026, 3, 4, 12, 0, tzinfo=UTC):
        run(when, frequencies=[DAILY])
        when += dt.timedelta(minutes=15)

    ends = list(
        Digest.objects.filter(subscriber=reader)
        .order_by("period_end")
        .values_list("period_end", flat=True)
    )
    assert ends == [
        dt.datetime(2026, 3, 2, 7, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 3, 5, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 4, 5, 0, tzinfo=UTC),
    ]
    assert sorted(sink.delivery_ids().values()) == [1, 1, 1]
