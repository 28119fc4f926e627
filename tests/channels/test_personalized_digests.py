"""Digests ranked by each reader's interest, with reasons and feedback links (decision 0080),
end to end: send_digests, the engine, a real SMTP server (aiosmtpd), the links followed."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from channels.engine import batches
from channels.models import Channel, Delivery, Digest, EngagementEvent
from publishing import ranking
from publishing.models import Publication, Topic
from subscribers.models import ReaderFeedback
from tests.channels.conftest import SmtpSink, body, make_dispatch
from tests.channels.digests_support import (
    DAILY,
    WEDNESDAY,
    listed_titles,
    messages_to,
    publish,
    run,
    subscriber,
)

pytestmark = pytest.mark.django_db

THURSDAY = WEDNESDAY + dt.timedelta(days=1)
FEEDBACK = re.compile(r"https?://[^\s\"<>]+/feedback/[^/\s\"<>]+/(?:more|less)/")


@pytest.fixture(autouse=True)
def _fresh_idf() -> None:
    ranking.clear_idf_cache()


def story(topic: Topic, when: dt.datetime, title: str, body_text: str) -> Publication:
    publication = publish(topic, when, title)
    Publication.objects.filter(pk=publication.pk).update(body=body_text, summary="")
    # The ranked text is the version's: record the body in a new version, as an edit would.
    publication.refresh_from_db()
    with time_machine.travel(when, tick=False):
        publication.save()
    return publication


def feedback_links(text: str, choice: str) -> list[str]:
    return [url for url in FEEDBACK.findall(text) if url.endswith(f"/{choice}/")]


def test_feedback_from_a_digest_changes_the_next_digest(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, client: Client
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    control = subscriber(topic, DAILY, "control")
    story(
        topic,
        WEDNESDAY - dt.timedelta(hours=5),
        "March database release",
        "The migration tool checks foreign keys and rebuilds indexes online.",
    )
    run(WEDNESDAY + dt.timedelta(minutes=5))
    first = messages_to(sink, reader.email)[0]
    text = body(first.as_bytes(), "plain")
    html = body(first.as_bytes(), "html")
    # Every item carries both links, in both parts, and the reason of a reader without history.
    assert len(feedback_links(text, "more")) == 1 and len(feedback_links(text, "less")) == 1
    assert len(feedback_links(html, "more")) == 1
    assert "(Because you follow Engine news)" in text
    assert "Because you follow Engine news" in html

    # The reader likes it, through the link of the delivered message (GET, then the POST).
    path = urlsplit(feedback_links(text, "more")[0]).path
    with time_machine.travel(WEDNESDAY + dt.timedelta(hours=2), tick=False):
        assert client.get(path).status_code == 200
        assert ReaderFeedback.objects.count() == 0
        assert client.post(path).status_code == 200
    assert ReaderFeedback.objects.get().choice == "more"

    story(
        topic,
        THURSDAY - dt.timedelta(hours=10),
        "April database release",
        "Foreign keys and indexes: the migration tool now rebuilds indexes faster.",
    )
    story(topic, THURSDAY - dt.timedelta(hours=1), "Office party", "Cake and music on Friday.")
    run(THURSDAY + dt.timedelta(minutes=5))

    liked = messages_to(sink, reader.email)[1]
    liked_text = body(liked.as_bytes(), "plain")
    assert listed_titles(liked_text) == ["April database release", "Office party"]
    assert "(Like “March database release”, which you liked)" in liked_text
    assert "Like “March database release”, which you liked" in body(liked.as_bytes(), "html")
    # The reader without feedback still gets the newest first.
    other = body(messages_to(sink, control.email)[1].as_bytes(), "plain")
    assert listed_titles(other) == ["Office party", "April database release"]
    assert Digest.objects.filter(subscriber=reader).count() == 2


def test_a_human_click_on_a_digest_entry_counts_and_a_machines_does_not(
    sink: SmtpSink, smtp_sink: tuple[SmtpSink, int], topic: Topic
) -> None:
    from tests.channels.conftest import make_smtp_channel

    make_smtp_channel(smtp_sink[1], tracking=True)
    human = subscriber(topic, DAILY, "human")
    machine = subscriber(topic, DAILY, "machine")
    story(
        topic,
        WEDNESDAY - dt.timedelta(hours=5),
        "March database release",
        "The migration tool checks foreign keys and rebuilds indexes online.",
    )
    run(WEDNESDAY + dt.timedelta(minutes=5))
    for person, verdict in ((human, "human"), (machine, "machine")):
        digest = Digest.objects.get(subscriber=person)
        assert digest.links and "/p/march-database-release/" in digest.links[0]
        # The feedback links are the reader's own: never rewritten to click redirects.
        assert not any("/feedback/" in link for link in digest.links)
        assert digest.delivery is not None
        EngagementEvent.objects.create(
            delivery=digest.delivery,
            kind=EngagementEvent.Kind.CLICK,
            link_index=0,
            occurred_at=WEDNESDAY + dt.timedelta(hours=2),
            method="GET",
            verdict=verdict,
            reason="human" if verdict == "human" else "bot_user_agent",
        )
    story(
        topic,
        THURSDAY - dt.timedelta(hours=10),
        "April database release",
        "Foreign keys and indexes: the migration tool now rebuilds indexes faster.",
    )
    story(topic, THURSDAY - dt.timedelta(hours=1), "Office party", "Cake and music on Friday.")
    run(THURSDAY + dt.timedelta(minutes=5))

    def second(address: str) -> str:
        return body(messages_to(sink, address)[1].as_bytes(), "plain")

    assert listed_titles(second(human.email)) == ["April database release", "Office party"]
    assert "(Like “March database release”, which you read)" in second(human.email)
    assert listed_titles(second(machine.email)) == ["Office party", "April database release"]


def test_a_publication_email_carries_untracked_feedback_links_that_work(
    sink: SmtpSink, smtp_sink: tuple[SmtpSink, int], topic: Topic, client: Client
) -> None:
    from tests.channels.conftest import add_subscribers, make_smtp_channel

    channel = make_smtp_channel(smtp_sink[1], tracking=True)
    reader = add_subscribers(topic, 1)[0]
    dispatch = make_dispatch(topic, title="Version 2.0 is out", slug="v2")
    from channels.engine import fanout

    fanout.plan_dispatch(dispatch.pk)
    batches.send_batch(channel.pk)

    raw = sink.messages[0]
    text, html = body(raw, "plain"), body(raw, "html")
    assert "More like this: " in text and "Less like this: " in text
    more = feedback_links(text, "more")
    assert len(more) == 1 and feedback_links(html, "more") == more
    assert feedback_links(html, "less") == feedback_links(text, "less")
    assert Delivery.objects.get(subscriber=reader).status == Delivery.Status.SENT

    response = client.post(urlsplit(feedback_links(text, "less")[0]).path)

    assert response.status_code == 200
    row = ReaderFeedback.objects.get()
    assert (row.subscriber_id, row.publication_id, row.choice) == (
        reader.pk,
        dispatch.publication_id,
        "less",
    )
    assert row.updated_at <= timezone.now()
