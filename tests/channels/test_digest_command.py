"""manage.py send_digests: the digests due at a time, and clear errors for bad arguments."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.core.management import CommandError, call_command

from channels.models import Channel, Digest
from publishing.models import Topic
from tests.channels.conftest import SmtpSink
from tests.channels.digests_support import DAILY, MONDAY, WEDNESDAY, WEEKLY, publish, subscriber


@pytest.mark.django_db
def test_the_command_sends_the_digests_due_at_the_given_time(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    subscriber(topic, DAILY, "daily")
    subscriber(topic, WEEKLY, "weekly")
    publish(topic, MONDAY - dt.timedelta(hours=2), "News")

    with time_machine.travel(MONDAY + dt.timedelta(days=3), tick=False):
        call_command("send_digests", "--frequency", "weekly", "--now", "2026-03-02T08:30")
        call_command("send_digests", "--now", "2026-03-02T08:30:00+00:00")

    assert list(Digest.objects.order_by("pk").values_list("frequency", "period_end")) == [
        (WEEKLY, MONDAY),
        (DAILY, MONDAY),
    ]
    assert len(sink.messages) == 2


@pytest.mark.django_db
def test_the_command_reports_its_work(
    smtp_channel: Channel, topic: Topic, capsys: pytest.CaptureFixture[str]
) -> None:
    subscriber(topic, DAILY, "daily")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    with time_machine.travel(WEDNESDAY + dt.timedelta(hours=1), tick=False):
        call_command("send_digests", "--frequency", "daily")
    output = capsys.readouterr().out
    assert "daily digests due at 2026-03-04T09:00:00+00:00: 1 written (1 subscribers due)" in output


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--frequency", "hourly"], "Unknown digest frequency 'hourly'"),
        (["--now", "yesterday"], "--now must be an ISO 8601 time"),
        (["--now", "2999-01-01T07:00"], "Cannot send digests for a time in the future"),
    ],
)
def test_the_command_rejects_bad_arguments_with_a_clear_error(
    smtp_channel: Channel, arguments: list[str], error: str
) -> None:
    with pytest.raises(CommandError, match=re.escape(error)):
        call_command("send_digests", *arguments)
    assert not Digest.objects.exists()


@pytest.mark.django_db
def test_the_command_says_so_when_no_email_channel_is_enabled() -> None:
    with pytest.raises(CommandError, match="No enabled email channel"):
        call_command("send_digests")
