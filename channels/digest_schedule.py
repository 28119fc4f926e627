"""When a subscriber's digest periods end: at their hour, in their time zone (decision 0081).

A daily period ends every local day at the subscriber's digest hour (``Subscriber.digest_time``),
a weekly one at that hour on DIGEST_WEEKDAY, local. So a daily period lasts 23 or 25 hours
across a DST change. An hour that does not exist that day (clocks jump from 02:00 to 03:00)
ends the period at the jump, the first moment after it; an hour that happens twice (clocks go
back from 03:00 to 02:00) ends it at its first occurrence. Times are computed with zoneinfo
(``fold=0``), never by adding hours to UTC.

A period is identified by its *day*: for a daily digest, the local date it ends on; for a
weekly one, the date of the DIGEST_WEEKDAY that closes its week (the seven local days ending
on that weekday). A subscriber gets at most one digest per day so defined, counted in their
current zone: after a change of zone or hour, the next period ends at the first end under the
new settings whose day comes after the previous digest's day. No period is doubled (no day has
two), none is skipped (a period starts where the previous one ended, whatever its length).
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings

from channels.models import Digest

DAILY = Digest.Frequency.DAILY
WEEKLY = Digest.Frequency.WEEKLY


@dataclass(frozen=True)
class Timing:
    """What decides a subscriber's period ends: their zone and local hour."""

    zone: zoneinfo.ZoneInfo
    hour: int


def local_end(day: date, timing: Timing) -> datetime:
    """The UTC instant of ``timing.hour``:00 on the local ``day`` (fold 0: a missing hour maps
    to the jump forward, a repeated one to its first occurrence)."""
    return datetime.combine(day, time(timing.hour), tzinfo=timing.zone).astimezone(UTC)


def latest_end(frequency: str, timing: Timing, now: datetime) -> datetime:
    """The end of the latest period of ``frequency`` ended at or before ``now``, in UTC."""
    local = now.astimezone(timing.zone)
    day = local.date()
    step = timedelta(days=1)
    if frequency == WEEKLY:
        day -= timedelta(days=(day.weekday() - settings.DIGEST_WEEKDAY) % 7)
        step = timedelta(weeks=1)
    end = local_end(day, timing)
    # At most twice: the end of the local date of ``now`` may be later in that day.
    while end > now:
        day -= step
        end = local_end(day, timing)
    return end


def period_day(frequency: str, moment: datetime, zone: zoneinfo.ZoneInfo) -> date:
    """The day a period ending at ``moment`` belongs to, in ``zone`` (see the module's text)."""
    day = moment.astimezone(zone).date()
    if frequency == WEEKLY:
        day += timedelta(days=(settings.DIGEST_WEEKDAY - day.weekday()) % 7)
    return day


def is_next_end(frequency: str, timing: Timing, end: datetime, previous: datetime | None) -> bool:
    """Whether a digest of ``frequency`` may end at ``end``, given the end of the subscriber's
    previous one (None: they have none): ``end`` is one of their ends under ``timing`` and
    falls on a later day than the previous one, and later in time."""
    if latest_end(frequency, timing, end) != end:
        return False
    if previous is None:
        return True
    return end > previous and period_day(frequency, end, timing.zone) > period_day(
        frequency, previous, timing.zone
    )


def due_end(
    frequency: str, timing: Timing, now: datetime, previous: datetime | None
) -> datetime | None:
    """The end of the period whose digest is due at ``now``, or None when none is: the latest
    end at or before ``now``, if it comes after the previous digest's (is_next_end)."""
    end = latest_end(frequency, timing, now)
    return end if is_next_end(frequency, timing, end, previous) else None
