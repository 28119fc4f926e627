"""Helpers of the digest tests: a clock-controlled publish and run, parsed messages."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from email.message import EmailMessage
from typing import Any

import time_machine

from channels import digests
from publishing.models import Publication, Topic
from subscribers.models import Subscriber, Subscription
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch

UTC = dt.UTC
DAILY = Subscription.Frequency.DAILY
WEEKLY = Subscription.Frequency.WEEKLY
# Wednesday 4 March 2026 and Monday 2 March 2026, at the default DIGEST_HOUR (8) of a
# subscriber in UTC (the default zone).
WEDNESDAY = dt.datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
MONDAY = dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def publish(topic: Topic, when: dt.datetime, title: str) -> Publication:
    """A publication first published (its ``publish`` dispatch created) at ``when``."""
    with time_machine.travel(when, tick=False):
        dispatch = make_dispatch(topic, title=title, slug=title.lower().replace(" ", "-"))
    return dispatch.publication


def run(when: dt.datetime, **kwargs: Any) -> list[digests.DigestReport]:
    """send_digests with the clock at ``when`` (the engine sends inline: tasks are sync)."""
    with time_machine.travel(when, tick=False):
        return digests.send_digests(**kwargs)


def parse(raw: bytes) -> EmailMessage:
    message: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)
    return message


def messages_to(sink: SmtpSink, address: str) -> list[EmailMessage]:
    return [m for m in map(parse, sink.messages) if m["To"] == address]


def listed_titles(text: str) -> list[str]:
    return re.findall(r"^\* (.+?)\r?$", text, re.MULTILINE)


def subscriber(topic: Topic, frequency: str, prefix: str, **fields: Any) -> Subscriber:
    return add_subscribers(topic, 1, prefix=prefix, frequency=frequency, **fields)[0]
