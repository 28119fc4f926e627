"""Engagement aggregates (channels.analytics): a tracked send through a real SMTP sink, readers
and machines following its links, the classifier's tally, and the funnel, clicks per link and
first hours read from the aggregates alone."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels import analytics, engagement
from channels.engine import fanout
from channels.models import Channel, Delivery, EngagementEvent, SesFeedback
from publishing.models import Topic
from subscribers.models import Subscriber
from tests.channels.conftest import SmtpSink, add_subscribers, body, make_dispatch

pytestmark = pytest.mark.django_db

BODY = "See [the notes](https://example.org/notes) and [the code](https://example.org/code)."
TRACKED = re.compile(r"https?://[^\"'\s<>]+/t/(?:c|o)/[^\"'\s<>]+")
READER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko)"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


def urls_by_recipient(sink: SmtpSink) -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for message in sink.messages:
        to = re.search(rb"^To: (.+?)\r?$", message, re.MULTILINE)
        assert to is not None
        found = [urlsplit(url).path for url in TRACKED.findall(body(message, "html"))]
        out[to.group(1).decode()] = {
            "open": [path for path in found if "/t/o/" in path],
            "click": [path for path in found if "/t/c/" in path],
        }
    return out


def test_the_funnel_links_and_hours_count_people_apart_from_machines(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    smtp_channel.tracking = True
    smtp_channel.save(update_fields=["tracking"])
    readers = add_subscribers(topic, 6)
    dispatch = make_dispatch(topic, body=BODY)
    with django_capture_on_commit_callbacks(execute=True):
        fanout.plan_dispatch(dispatch.pk)
    sent_at = dispatch.created_at  # hours after sending count from here
    urls = urls_by_recipient(sink)
    a, b, c, d, e, _ = (urls[reader.email] for reader in readers)

    with time_machine.travel(sent_at + timedelta(hours=2), tick=False):
        client.get(a["open"][0], HTTP_USER_AGENT=READER)  # a opens, then clicks twice
        client.get(a["click"][0], HTTP_USER_AGENT=READER)
        client.get(a["click"][0], HTTP_USER_AGENT=READER)
        client.get(b["click"][1], HTTP_USER_AGENT=READER)  # b clicks with images blocked
        client.get(c["open"][0], HTTP_USER_AGENT=GMAIL)  # c's open is Gmail's proxy
    with time_machine.travel(sent_at + timedelta(hours=5), tick=False):
        client.head(d["click"][0], HTTP_USER_AGENT=READER)  # d's gateway checks a link
        client.get(e["click"][0], HTTP_USER_AGENT="python-requests/2.31.0")
    # f unsubscribes the next day; e (whose link a script fetched) complains.
    Subscriber.objects.filter(pk=readers[5].pk).update(
        status=Subscriber.Status.UNSUBSCRIBED, unsubscribed_at=sent_at + timedelta(days=1)
    )
    SesFeedback.objects.create(
        sns_message_id="n-1",
        topic_arn="arn:aws:sns:eu-west-1:1:x",
        type=SesFeedback.Type.COMPLAINT,
        delivery=Delivery.objects.get(subscriber=readers[4]),
    )

    assert engagement.classify_pending(now=sent_at + timedelta(days=2)) == 7
    with CaptureQueriesContext(connection) as queries:
        result = analytics.analytics(dispatch.publication_id)

    assert len(queries) <= 6  # a handful of queries, none over the events
    assert not any("engagementevent" in query["sql"] for query in queries.captured_queries)
    funnel = result.funnel
    assert (funnel.targeted, funnel.sent, funnel.delivered, funnel.bounced) == (6, 6, 6, 0)
    assert (funnel.opened_human, funnel.clicked_human) == (2, 2)  # a, and b by its click
    assert (funnel.human_opens, funnel.human_clicks) == (1, 3)
    assert funnel.opened_proxy == 1
    assert (funnel.machine_opens, funnel.machine_clicks) == (0, 2)
    assert (funnel.complained, funnel.unsubscribed_after) == (1, 1)
    assert funnel.rate(funnel.opened_human) == round(2 / 6, 4)
    by_url = {link.url: (link.human, link.machine) for link in result.links}
    assert by_url == {"https://example.org/notes": (2, 2), "https://example.org/code": (1, 0)}
    assert result.hours["opens_human"][2] == 1
    assert result.hours["clicks_human"][2] == 3
    assert result.hours["opens_proxy"][2] == 1
    assert result.hours["machine"][5] == 2
    assert sum(result.hours["clicks_human"]) == 3


def test_a_delivery_is_opened_once_however_many_times_and_batches_it_takes(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    smtp_channel.tracking = True
    smtp_channel.save(update_fields=["tracking"])
    [reader] = add_subscribers(topic, 1)
    dispatch = make_dispatch(topic, body=BODY)
    with django_capture_on_commit_callbacks(execute=True):
        fanout.plan_dispatch(dispatch.pk)
    pixel = urls_by_recipient(sink)[reader.email]["open"][0]
    later = timezone.now() + timedelta(minutes=10)
    for round_ in range(3):
        with time_machine.travel(later + timedelta(minutes=round_), tick=False):
            client.get(pixel, HTTP_USER_AGENT=READER)
        engagement.classify_pending(now=later + timedelta(hours=1 + round_))

    assert EngagementEvent.objects.filter(verdict="human").count() == 3
    funnel = analytics.funnel(dispatch.publication_id)
    assert (funnel.opened_human, funnel.human_opens) == (1, 3)
