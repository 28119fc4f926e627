"""Digests at the reader's hour (decision 0081), run as the schedule runs them: send_digests
every quarter of an hour under time-machine, across DST changes, in half-hour zones, and
across a change of zone or hour between two periods. Each case asserts the periods written,
one digest and one delivery per local day, and that no publication is listed twice or
skipped."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from typing import Any

import pytest
import time_machine

from channels.models import Channel, Delivery, Digest
from publishing.models import Publication, Topic
from subscribers import services as subscriber_services
from subscribers.models import Subscriber
from tests.channels.conftest import SmtpSink
from tests.channels.digests_support import DAILY, WEEKLY, publish, run, subscriber

UTC = dt.UTC
QUARTER = dt.timedelta(minutes=15)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def publish_every(
    topic: Topic, start: dt.datetime, end: dt.datetime, hours: int, name: str = "Story"
) -> list[int]:
    """A publication every ``hours`` from ``start`` to before ``end`` (at :07 past, so that none
    falls exactly on a period's end); their ids in order."""
    made, when, number = [], start + dt.timedelta(minutes=7), 0
    while when < end:
        number += 1
        made.append(publish(topic, when, f"{name} {number}").pk)
        when += dt.timedelta(hours=hours)
    return made


def run_every_quarter_hour(
    start: dt.datetime, end: dt.datetime, frequencies: tuple[str, ...] = (DAILY,)
) -> None:
    """send_digests at each quarter hour from ``start`` to ``end`` included, as the schedule."""
    when = start
    while when <= end:
        run(when, frequencies=list(frequencies))
        when += QUARTER


def local(moment: dt.datetime, zone: str) -> str:
    return moment.astimezone(zoneinfo.ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M %Z")


def assert_each_publication_listed_once(reader: Subscriber, published: list[int]) -> None:
    """Every publication published from the first period's start to the last period's end is
    in exactly one digest, and each period starts where the previous one ended."""
    rows = list(Digest.objects.filter(subscriber=reader).order_by("period_end"))
    listed = [pk for digest in rows for pk in digest.publications.values_list("pk", flat=True)]
    first_start, last_end = rows[0].period_start, rows[-1].period_end
    due = [
        pk
        for pk in published
        if first_start <= Publication.objects.get(pk=pk).dispatches.get().created_at < last_end
    ]
    assert sorted(listed) == sorted(due)
    for earlier, later in itertools.pairwise(rows):
        assert later.period_start == earlier.period_end


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        (
            "Europe/Paris",  # spring forward on Sunday 29 March 2026
            "2026-03-27T12:00",
            "2026-03-31T12:00",
            [
                "2026-03-28 08:00 CET",
                "2026-03-29 08:00 CEST",
                "2026-03-30 08:00 CEST",
                "2026-03-31 08:00 CEST",
            ],
        ),
        (
            "Europe/Paris",  # fall back on Sunday 25 October 2026
            "2026-10-23T12:00",
            "2026-10-26T12:00",
            ["2026-10-24 08:00 CEST", "2026-10-25 08:00 CET", "2026-10-26 08:00 CET"],
        ),
        (
            "America/New_York",  # spring forward on Sunday 8 March 2026
            "2026-03-06T18:00",
            "2026-03-09T18:00",
            ["2026-03-07 08:00 EST", "2026-03-08 08:00 EDT", "2026-03-09 08:00 EDT"],
        ),
        (
            "America/New_York",  # fall back on Sunday 1 November 2026
            "2026-10-30T18:00",
            "2026-11-02T18:00",
            ["2026-10-31 08:00 EDT", "2026-11-01 08:00 EST", "2026-11-02 08:00 EST"],
        ),
        (
            "Asia/Kolkata",  # +05:30: 08:00 is 02:30 UTC
            "2026-03-03T12:00",
            "2026-03-06T12:00",
            ["2026-03-04 08:00 IST", "2026-03-05 08:00 IST", "2026-03-06 08:00 IST"],
        ),
    ],
)
def test_a_daily_digest_goes_at_8_local_every_day_across_dst_and_half_hour_zones(
    smtp_channel: Channel,
    sink: SmtpSink,
    topic: Topic,
    zone: str,
    start: str,
    end: str,
    expected: list[str],
) -> None:
    reader = subscriber(topic, DAILY, "local", timezone=zone)
    published = publish_every(topic, at(start) - dt.timedelta(hours=30), at(end), hours=5)

    run_every_quarter_hour(at(start), at(end))

    rows = list(Digest.objects.filter(subscriber=reader).order_by("period_end"))
    assert [local(row.period_end, zone) for row in rows[1:]] == expected
    # The first is the period that had ended when the runs began; each later one is written by
    # the first run at or after the local hour: within the quarter hour.
    for row in rows[1:]:
        assert dt.timedelta(0) <= row.created_at - row.period_end < QUARTER
    lengths = {row.period_end - row.period_start for row in rows[1:]}
    assert lengths <= {dt.timedelta(hours=23), dt.timedelta(hours=24), dt.timedelta(hours=25)}
    assert Delivery.objects.filter(subscriber=reader).count() == len(rows)
    assert sorted(sink.delivery_ids().values()) == [1] * len(rows)
    assert_each_publication_listed_once(reader, published)


@pytest.mark.django_db
def test_the_dst_days_periods_last_23_and_25_hours(smtp_channel: Channel, topic: Topic) -> None:
    spring = subscriber(topic, DAILY, "spring", timezone="Europe/Paris")
    publish_every(topic, at("2026-03-27T00:00"), at("2026-03-30T00:00"), hours=5)
    run_every_quarter_hour(at("2026-03-28T06:45"), at("2026-03-29T06:15"))

    last = Digest.objects.filter(subscriber=spring).latest("period_end")
    assert (last.period_start, last.period_end) == (at("2026-03-28T07:00"), at("2026-03-29T06:00"))
    assert last.period_end - last.period_start == dt.timedelta(hours=23)

    Digest.objects.all().delete()
    autumn = subscriber(topic, DAILY, "autumn", timezone="Europe/Paris")
    publish_every(topic, at("2026-10-23T00:00"), at("2026-10-26T00:00"), hours=5, name="Later")
    run_every_quarter_hour(at("2026-10-24T05:45"), at("2026-10-25T07:15"))

    last = Digest.objects.filter(subscriber=autumn).latest("period_end")
    assert (last.period_start, last.period_end) == (at("2026-10-24T06:00"), at("2026-10-25T07:00"))
    assert last.period_end - last.period_start == dt.timedelta(hours=25)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # Spring: 02:00 does not exist on 29 March; that day's digest goes when the clocks
        # jump (03:00 CEST), the other days at 02:00.
        (
            "2026-03-27T12:00",
            "2026-03-30T12:00",
            ["2026-03-28 02:00 CET", "2026-03-29 03:00 CEST", "2026-03-30 02:00 CEST"],
        ),
        # Autumn: 02:00 happens twice on 25 October; the digest goes at the first only.
        (
            "2026-10-23T12:00",
            "2026-10-26T12:00",
            ["2026-10-24 02:00 CEST", "2026-10-25 02:00 CEST", "2026-10-26 02:00 CET"],
        ),
    ],
)
def test_an_hour_missing_or_repeated_on_the_change_day_gives_one_digest_that_day(
    smtp_channel: Channel, topic: Topic, start: str, end: str, expected: list[str]
) -> None:
    reader = subscriber(topic, DAILY, "two", timezone="Europe/Paris", digest_hour=2)
    published = publish_every(topic, at(start) - dt.timedelta(hours=30), at(end), hours=5)

    run_every_quarter_hour(at(start), at(end))

    rows = list(Digest.objects.filter(subscriber=reader).order_by("period_end"))
    assert [local(row.period_end, "Europe/Paris") for row in rows[1:]] == expected
    assert Delivery.objects.filter(subscriber=reader).count() == len(rows)
    assert_each_publication_listed_once(reader, published)


@pytest.mark.django_db
def test_a_weekly_digest_goes_on_monday_at_8_local_across_the_spring_change(
    smtp_channel: Channel, topic: Topic
) -> None:
    reader = subscriber(topic, WEEKLY, "weekly", timezone="Europe/Paris")
    published = publish_every(topic, at("2026-03-15T00:00"), at("2026-03-30T12:00"), hours=23)

    # Every quarter hour around the two Monday mornings, every hour in between (the weekly
    # period cannot end then; the hourly runs only show that nothing is written early).
    run_every_quarter_hour(at("2026-03-22T12:00"), at("2026-03-23T12:00"), (WEEKLY,))
    when = at("2026-03-23T13:00")
    while when < at("2026-03-29T12:00"):
        run(when, frequencies=[WEEKLY])
        when += dt.timedelta(hours=1)
    run_every_quarter_hour(at("2026-03-29T12:00"), at("2026-03-30T12:00"), (WEEKLY,))

    rows = list(Digest.objects.filter(subscriber=reader).order_by("period_end"))
    # The first is the week that had ended when the runs began.
    assert [local(row.period_end, "Europe/Paris") for row in rows] == [
        "2026-03-16 08:00 CET",
        "2026-03-23 08:00 CET",
        "2026-03-30 08:00 CEST",
    ]
    assert rows[2].period_end - rows[2].period_start == dt.timedelta(hours=167)
    for row in rows[1:]:
        assert dt.timedelta(0) <= row.created_at - row.period_end < QUARTER
    assert_each_publication_listed_once(reader, published)


def change(reader: Subscriber, **choices: Any) -> None:
    """The preference center's service, as a POST would call it, at the current (frozen) time."""
    reader.refresh_from_db()
    subscriber_services.update_preferences(
        reader,
        topics=[s.topic for s in reader.subscriptions.select_related("topic")],
        frequency=DAILY,
        paused_until=None,
        email_format=reader.email_format,
        origin=subscriber_services.Origin(via="preferences"),
        **choices,
    )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("choices", "expected"),
    [
        # Paris 08:00 -> New York 08:00 on Monday morning: Monday in New York already had its
        # digest (Paris's came at 02:00 there); Tuesday and Wednesday at 08:00 New York.
        (
            {"time_zone": "America/New_York"},
            ["2026-03-03 08:00 EST", "2026-03-04 08:00 EST"],
        ),
        # 08:00 -> 20:00 the same day: not a second digest on Monday; Tuesday at 20:00.
        ({"digest_hour": 20}, ["2026-03-03 20:00 CET"]),
        # 08:00 -> 07:00: Tuesday and Wednesday at 07:00.
        ({"digest_hour": 7}, ["2026-03-03 07:00 CET", "2026-03-04 07:00 CET"]),
        # Paris -> Tokyo: Tuesday 08:00 in Tokyo (Monday 23:00 UTC) is a new day there.
        (
            {"time_zone": "Asia/Tokyo"},
            ["2026-03-03 08:00 JST", "2026-03-04 08:00 JST"],
        ),
    ],
)
def test_a_change_of_zone_or_hour_between_periods_skips_and_doubles_nothing(
    smtp_channel: Channel,
    sink: SmtpSink,
    topic: Topic,
    choices: dict[str, Any],
    expected: list[str],
) -> None:
    reader = subscriber(topic, DAILY, "mover", timezone="Europe/Paris", digest_hour=8)
    published = publish_every(topic, at("2026-02-28T00:00"), at("2026-03-04T14:00"), hours=3)
    run_every_quarter_hour(at("2026-03-01T07:30"), at("2026-03-02T10:00"))
    sunday, monday = Digest.objects.filter(subscriber=reader).order_by("period_end")
    assert local(monday.period_end, "Europe/Paris") == "2026-03-02 08:00 CET"

    with time_machine.travel(at("2026-03-02T10:05"), tick=False):
        change(reader, **choices)
    run_every_quarter_hour(at("2026-03-02T10:15"), at("2026-03-04T14:00"))

    reader.refresh_from_db()
    rows = list(Digest.objects.filter(subscriber=reader).order_by("period_end"))
    assert rows[:2] == [sunday, monday]
    assert [local(row.period_end, reader.timezone) for row in rows[2:]] == expected
    days = [row.period_end.astimezone(reader.zone).date() for row in rows[1:]]
    assert len(days) == len(set(days))  # one digest per local day
    assert Delivery.objects.filter(subscriber=reader).count() == len(rows)
    assert sorted(sink.delivery_ids().values()) == [1] * len(rows)
    assert_each_publication_listed_once(reader, published)


@pytest.mark.django_db
def test_a_subscriber_paused_until_their_local_day_gets_that_days_digest(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    # 08:00 on Thursday 5 March in Tokyo is Wednesday 23:00 UTC: the pause ends on their day.
    reader = subscriber(topic, DAILY, "tokyo", timezone="Asia/Tokyo")
    reader.subscriptions.update(paused_until=dt.date(2026, 3, 5))
    publish(topic, at("2026-03-04T12:00"), "News")

    run(at("2026-03-04T23:00"))

    digest = Digest.objects.get(subscriber=reader)
    assert local(digest.period_end, "Asia/Tokyo") == "2026-03-05 08:00 JST"
    assert sink.recipients == [reader.email]
