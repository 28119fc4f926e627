"""When a subscriber's digest periods end (decision 0081): the local hour in their zone, the DST
days of 23 and 25 hours, hours that do not exist or exist twice, and the one-per-day rule after
a change of zone or hour. Pure time arithmetic: no database."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest

from channels.digest_schedule import DAILY, WEEKLY, Timing, due_end, is_next_end, latest_end

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def timing(zone: str, hour: int = 8) -> Timing:
    return Timing(zoneinfo.ZoneInfo(zone), hour)


@pytest.mark.parametrize(
    ("zone", "now", "end"),
    [
        # Paris, winter (UTC+1) and summer (UTC+2): 08:00 local.
        ("Europe/Paris", "2026-03-04T07:00", "2026-03-04T07:00"),
        ("Europe/Paris", "2026-03-04T06:59", "2026-03-03T07:00"),
        ("Europe/Paris", "2026-07-01T06:00", "2026-07-01T06:00"),
        # The spring change (29 March 2026): 08:00 CEST is 06:00 UTC, 23 hours after 08:00 CET.
        ("Europe/Paris", "2026-03-29T06:00", "2026-03-29T06:00"),
        ("Europe/Paris", "2026-03-29T05:59", "2026-03-28T07:00"),
        # The autumn change (25 October 2026): 08:00 CET is 07:00 UTC, 25 hours later.
        ("Europe/Paris", "2026-10-25T06:30", "2026-10-24T06:00"),
        ("Europe/Paris", "2026-10-25T07:00", "2026-10-25T07:00"),
        # New York: 8 March and 1 November 2026.
        ("America/New_York", "2026-03-08T12:00", "2026-03-08T12:00"),
        ("America/New_York", "2026-03-08T11:59", "2026-03-07T13:00"),
        ("America/New_York", "2026-11-01T12:30", "2026-10-31T12:00"),
        ("America/New_York", "2026-11-01T13:00", "2026-11-01T13:00"),
        # Half- and quarter-hour zones: Kolkata +05:30, Kathmandu +05:45, Chatham +13:45.
        ("Asia/Kolkata", "2026-03-04T02:30", "2026-03-04T02:30"),
        ("Asia/Kolkata", "2026-03-04T02:29", "2026-03-03T02:30"),
        ("Asia/Kathmandu", "2026-03-04T02:15", "2026-03-04T02:15"),
        ("Pacific/Chatham", "2026-03-04T00:00", "2026-03-03T18:15"),
        # Ahead of UTC by more than the hour: the local day is already tomorrow.
        ("Pacific/Kiritimati", "2026-03-03T18:00", "2026-03-03T18:00"),
    ],
)
def test_a_daily_period_ends_at_the_local_hour_whatever_the_zone_or_season(
    zone: str, now: str, end: str
) -> None:
    assert latest_end(DAILY, timing(zone), at(now)) == at(end)


def test_the_periods_around_a_dst_change_last_23_and_25_hours() -> None:
    paris = timing("Europe/Paris")
    spring = latest_end(DAILY, paris, at("2026-03-29T12:00"))
    autumn = latest_end(DAILY, paris, at("2026-10-25T12:00"))
    before_spring = latest_end(DAILY, paris, spring - dt.timedelta(seconds=1))
    before_autumn = latest_end(DAILY, paris, autumn - dt.timedelta(seconds=1))

    assert spring - before_spring == dt.timedelta(hours=23)
    assert autumn - before_autumn == dt.timedelta(hours=25)


def test_an_hour_that_does_not_exist_ends_the_period_when_the_clocks_jump() -> None:
    # 29 March 2026 in Paris: 02:00 CET is followed by 03:00 CEST (01:00 UTC).
    two = timing("Europe/Paris", 2)
    end = latest_end(DAILY, two, at("2026-03-29T12:00"))
    assert end == at("2026-03-29T01:00")
    assert end.astimezone(two.zone).strftime("%H:%M %Z") == "03:00 CEST"
    assert latest_end(DAILY, two, at("2026-03-29T00:59")) == at("2026-03-28T01:00")


def test_an_hour_that_happens_twice_ends_the_period_at_its_first_occurrence_only() -> None:
    # 25 October 2026 in Paris: 02:00 CEST (00:00 UTC), then 02:00 CET again (01:00 UTC).
    two = timing("Europe/Paris", 2)
    first = latest_end(DAILY, two, at("2026-10-25T00:00"))
    assert first == at("2026-10-25T00:00")
    assert latest_end(DAILY, two, at("2026-10-25T01:30")) == first
    assert due_end(DAILY, two, at("2026-10-25T01:30"), previous=first) is None
    assert latest_end(DAILY, two, at("2026-10-26T01:00")) == at("2026-10-26T01:00")


@pytest.mark.parametrize(
    ("zone", "now", "end"),
    [
        # DIGEST_WEEKDAY Monday: 23 March (CET) and 30 March 2026 (CEST), 167 hours apart.
        ("Europe/Paris", "2026-03-29T12:00", "2026-03-23T07:00"),
        ("Europe/Paris", "2026-03-30T06:00", "2026-03-30T06:00"),
        ("America/New_York", "2026-11-02T13:00", "2026-11-02T13:00"),
        ("America/New_York", "2026-11-02T12:59", "2026-10-26T12:00"),
        # Monday 08:00 in Tokyo is Sunday 23:00 UTC.
        ("Asia/Tokyo", "2026-03-01T23:00", "2026-03-01T23:00"),
    ],
)
def test_a_weekly_period_ends_at_the_local_hour_on_the_local_weekday(
    zone: str, now: str, end: str
) -> None:
    assert latest_end(WEEKLY, timing(zone), at(now)) == at(end)


def test_a_weekly_period_follows_the_configured_weekday(settings: Any) -> None:
    settings.DIGEST_WEEKDAY = 4  # Friday; 6 March 2026 is one
    assert latest_end(WEEKLY, timing("Europe/Paris", 18), at("2026-03-10T09:00")) == at(
        "2026-03-06T17:00"
    )


def test_the_next_end_after_a_digest_is_the_next_local_day() -> None:
    paris = timing("Europe/Paris")
    monday = at("2026-03-02T07:00")
    assert due_end(DAILY, paris, at("2026-03-02T07:00"), previous=None) == monday
    assert due_end(DAILY, paris, at("2026-03-02T20:00"), previous=monday) is None
    assert due_end(DAILY, paris, at("2026-03-03T07:00"), previous=monday) == at("2026-03-03T07:00")


@pytest.mark.parametrize(
    ("zone", "hour", "now", "expected"),
    [
        # Paris 08:00 on Monday was the last digest (07:00 UTC). A later hour the same day waits
        # for the next day: no local day gets two daily digests.
        ("Europe/Paris", 20, "2026-03-02T19:00", None),
        ("Europe/Paris", 20, "2026-03-03T19:00", "2026-03-03T19:00"),
        # An earlier hour: the next day at that hour.
        ("Europe/Paris", 7, "2026-03-03T06:00", "2026-03-03T06:00"),
        # Eastwards: Tokyo's Tuesday 08:00 (Monday 23:00 UTC) is a new local day there.
        ("Asia/Tokyo", 8, "2026-03-02T23:00", "2026-03-02T23:00"),
        # Westwards: New York's Monday 08:00 comes after Paris's, but it is the same local day
        # in New York (Monday 02:00 there): the next is Tuesday 08:00.
        ("America/New_York", 8, "2026-03-02T13:00", None),
        ("America/New_York", 8, "2026-03-03T13:00", "2026-03-03T13:00"),
        # Far west: the Paris digest fell on Sunday evening in Honolulu, so Monday 08:00 there
        # is a new local day.
        ("Pacific/Honolulu", 8, "2026-03-02T18:00", "2026-03-02T18:00"),
    ],
)
def test_after_a_change_of_zone_or_hour_the_next_digest_is_on_the_next_local_day(
    zone: str, hour: int, now: str, expected: str | None
) -> None:
    previous = at("2026-03-02T07:00")  # Monday 08:00 in Paris
    end = due_end(DAILY, timing(zone, hour), at(now), previous=previous)
    assert end == (at(expected) if expected else None)


def test_a_weekly_digest_moved_west_does_not_go_twice_in_one_week() -> None:
    # Monday 08:00 in Paris is Sunday 21:00 in Honolulu: that week (Tuesday to Monday) is taken.
    previous = at("2026-03-02T07:00")
    honolulu = timing("Pacific/Honolulu")
    assert due_end(WEEKLY, honolulu, at("2026-03-02T18:00"), previous=previous) is None
    assert due_end(WEEKLY, honolulu, at("2026-03-09T18:00"), previous=previous) == at(
        "2026-03-09T18:00"
    )


def test_an_end_that_is_not_on_the_subscribers_schedule_is_refused() -> None:
    paris = timing("Europe/Paris")
    assert is_next_end(DAILY, paris, at("2026-03-04T07:00"), None)
    assert not is_next_end(DAILY, paris, at("2026-03-04T08:00"), None)
    assert not is_next_end(WEEKLY, paris, at("2026-03-04T07:00"), None)  # a Wednesday
