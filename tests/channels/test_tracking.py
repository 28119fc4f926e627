"""Engagement tracking (decision 0078): mail sent through a real SMTP sink carries signed open
and click URLs bound to (delivery, link index); following them redirects to the version's own
links and appends events; an altered link answers 400 and redirects nowhere; subscribers who
opted out, and channels that do not track, get untracked mail."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from channels import tracking
from channels.engine import fanout
from channels.models import Channel, Delivery, EngagementEvent, TrackedLink
from publishing.models import Topic
from subscribers.models import Subscriber
from tests.channels.conftest import SmtpSink, add_subscribers, body, make_dispatch

pytestmark = pytest.mark.django_db

BODY = (
    "Read [the notes](https://example.org/notes) and "
    "[the tracker](https://example.org/issues?state=open&sort=new), or "
    "[write to us](mailto:team@example.org)."
)
TRACKED = re.compile(r"https?://[^\"'\s<>|()\\]+/t/(?:c|o)/[^\"'\s<>|()\\]+")


def send(topic: Topic, captured: Any) -> dict[int, str]:
    """Publish BODY to ``topic``; return each delivery's HTML as the sink received it."""
    dispatch = make_dispatch(topic, body=BODY)
    with captured(execute=True):
        fanout.plan_dispatch(dispatch.pk)
    return {}


def html_by_recipient(sink: SmtpSink) -> dict[str, str]:
    out = {}
    for message in sink.messages:
        to = re.search(rb"^To: (.+?)\r?$", message, re.MULTILINE)
        assert to is not None
        out[to.group(1).decode()] = body(message, "html")
    return out


def path_of(url: str) -> str:
    return urlsplit(url).path


def first_tracked(sink: SmtpSink, email: str, kind: str) -> str:
    """The path of the first open ("o") or click ("c") URL in the mail ``email`` received."""
    return path_of(
        next(url for url in TRACKED.findall(html_by_recipient(sink)[email]) if f"/t/{kind}/" in url)
    )


@pytest.fixture
def tracked_channel(smtp_channel: Channel) -> Channel:
    smtp_channel.tracking = True
    smtp_channel.save(update_fields=["tracking"])
    return smtp_channel


def test_tracked_mail_links_redirect_to_the_versions_links_and_record_events(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    [reader] = add_subscribers(topic, 1)
    send(topic, django_capture_on_commit_callbacks)
    html = html_by_recipient(sink)[reader.email]
    delivery = Delivery.objects.get(subscriber=reader)

    urls = TRACKED.findall(html)
    clicks = [url for url in urls if "/t/c/" in url]
    [pixel] = [url for url in urls if "/t/o/" in url]
    assert len(clicks) == 3  # the body's two web links and "Read it online"
    # The original targets are nowhere in the HTML; mailto: and the subscriber's own links
    # (preferences, unsubscribe) are left alone.
    assert "example.org/notes" not in html
    assert "mailto:team@example.org" in html
    assert "/preferences/" in html and "/unsubscribe/" in html

    opened = client.get(path_of(pixel), HTTP_USER_AGENT="Mozilla/5.0 (Macintosh)")
    assert opened.status_code == 200
    assert opened["Content-Type"] == "image/gif"
    assert opened.content == tracking.PIXEL
    assert "no-store" in opened["Cache-Control"]
    first = client.get(path_of(clicks[0]))
    second = client.get(path_of(clicks[1]) + "?next=https://evil.example/")
    assert (first.status_code, first["Location"]) == (302, "https://example.org/notes")
    assert (second.status_code, second["Location"]) == (
        302,
        "https://example.org/issues?state=open&sort=new",
    )
    events = list(
        EngagementEvent.objects.filter(delivery=delivery)
        .order_by("pk")
        .values_list("kind", "link_index", "verdict", "user_agent")
    )
    assert events == [
        ("open", None, "", "Mozilla/5.0 (Macintosh)"),
        ("click", 0, "", ""),
        ("click", 1, "", ""),
    ]
    assert delivery.dispatch is not None
    publication_url = f"http://127.0.0.1:8000{delivery.dispatch.publication.get_absolute_url()}"
    assert list(
        TrackedLink.objects.filter(surface="email").order_by("index").values_list("url", flat=True)
    ) == [
        "https://example.org/notes",
        "https://example.org/issues?state=open&sort=new",
        publication_url,
    ]


def test_an_altered_link_answers_400_and_redirects_nowhere(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    [reader] = add_subscribers(topic, 1)
    send(topic, django_capture_on_commit_callbacks)
    html = html_by_recipient(sink)[reader.email]
    click = path_of(next(url for url in TRACKED.findall(html) if "/t/c/" in url))
    pixel = path_of(next(url for url in TRACKED.findall(html) if "/t/o/" in url))
    _, _, _, delivery_id, ref, index, signature = click.split("/")
    other = Delivery.objects.exclude(pk=int(delivery_id)).values_list("pk", flat=True).first()
    sign = tracking.signer()
    version = int(ref[1:])
    altered = [
        f"/t/c/{delivery_id}/{ref}/{index}/{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"/t/c/{int(delivery_id) + 1}/{ref}/{index}/{signature}",
        f"/t/c/{delivery_id}/{ref}/1/{signature}",
        f"/t/c/{other or 999999}/{ref}/{index}/{signature}",
        f"/t/c/{delivery_id}/e{version + 1}/{index}/{signature}",  # another version's links
        f"/t/c/{delivery_id}/s{version}/{index}/{signature}",  # another surface's
        f"/t/c/{delivery_id}/x{version}/{index}/{signature}",  # no such surface
        # Correctly signed, but the message has no link 7: nothing to redirect to.
        f"/t/c/{delivery_id}/{ref}/7/{sign.sign(f'c:{delivery_id}:{ref}:7')}",
        # Correctly signed, for a version that has no links stored.
        f"/t/c/{delivery_id}/e{version + 9}/0/{sign.sign(f'c:{delivery_id}:e{version + 9}:0')}",
        pixel.replace(".gif", "x.gif"),
    ]
    for path in altered:
        answer = client.get(path)
        assert answer.status_code == 400, path
        assert "Location" not in answer
        assert b"not valid" in answer.content
    assert not EngagementEvent.objects.exists()


def test_a_hit_on_a_deleted_delivery_is_answered_and_records_nothing(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    [reader] = add_subscribers(topic, 1)
    send(topic, django_capture_on_commit_callbacks)
    pixel = first_tracked(sink, reader.email, "o")
    Delivery.objects.filter(subscriber=reader).delete()
    assert client.get(pixel).status_code == 200
    assert not EngagementEvent.objects.exists()


def test_opted_out_subscribers_and_untracked_channels_get_untracked_mail(
    topic: Topic,
    smtp_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
) -> None:
    tracked, opted_out = add_subscribers(topic, 2)
    Subscriber.objects.filter(pk=opted_out.pk).update(tracking_opt_out=True)
    send(topic, django_capture_on_commit_callbacks)
    for html in html_by_recipient(sink).values():
        assert TRACKED.findall(html) == []  # the channel does not track
        assert 'href="https://example.org/notes"' in html

    sink.messages.clear()
    smtp_channel.tracking = True
    smtp_channel.save(update_fields=["tracking"])
    send(topic, django_capture_on_commit_callbacks)
    mails = html_by_recipient(sink)
    assert len(TRACKED.findall(mails[tracked.email])) == 4  # three links and the pixel
    assert TRACKED.findall(mails[opted_out.email]) == []
    assert 'href="https://example.org/notes"' in mails[opted_out.email]
    assert "/t/o/" not in mails[opted_out.email]


def test_a_head_request_is_recorded_and_nothing_but_get_or_head_is_answered(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    [reader] = add_subscribers(topic, 1)
    send(topic, django_capture_on_commit_callbacks)
    click = first_tracked(sink, reader.email, "c")
    assert client.head(click).status_code == 302
    assert client.post(click).status_code == 405
    assert list(EngagementEvent.objects.values_list("method", flat=True)) == ["HEAD"]


@pytest.mark.parametrize("kind", ["slack", "discord"])
def test_slack_and_discord_posts_carry_click_redirects_when_the_channel_tracks(
    httpserver: Any, kind: str, client: Client
) -> None:
    from channels.configuration import save_channel
    from channels.engine import batches
    from publishing import services as publishing
    from tests.factories import PublicationFactory, TopicFactory, UserFactory

    topic = TopicFactory.create()
    httpserver.expect_request(f"/{kind}", method="POST").respond_with_data(
        "ok" if kind == "slack" else "", status=200 if kind == "slack" else 204
    )
    channel = Channel(name=kind, kind=kind, tracking=True)
    config = {"mode": "webhook"} if kind == "slack" else {}
    save_channel(channel, {**config, "webhook_url": httpserver.url_for(f"/{kind}")})
    publication = PublicationFactory.create(topics=[topic], body=BODY)
    publishing.publish(publication, by=UserFactory.create(is_superuser=True))
    fanout.plan_dispatch(publication.dispatches.get().pk)
    batches.send_batches(channel.pk)

    [(request, _)] = httpserver.log
    posted = request.get_data(as_text=True)
    clicks = TRACKED.findall(posted)
    assert clicks, posted
    assert "https://example.org/notes" not in posted
    followed = [client.get(path_of(url)) for url in clicks]
    assert "https://example.org/notes" in [answer["Location"] for answer in followed]
    assert EngagementEvent.objects.filter(kind="click").count() == len(clicks)


def test_erasing_a_subscriber_scrubs_their_events_but_keeps_the_counts(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
) -> None:
    from subscribers.services import Origin, erase_subscriber

    kept, erased = add_subscribers(topic, 2)
    send(topic, django_capture_on_commit_callbacks)
    mails = html_by_recipient(sink)
    for reader in (kept, erased):
        pixel = next(u for u in TRACKED.findall(mails[reader.email]) if "/t/o/" in u)
        client.get(path_of(pixel), HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64)")

    erase_subscriber(erased, Origin(via="test"))

    rows = EngagementEvent.objects.order_by("delivery__pk").values_list("user_agent", "ip")
    assert EngagementEvent.objects.count() == 2
    assert sorted(rows, key=lambda row: row[0]) == [
        ("", None),
        ("Mozilla/5.0 (X11; Linux x86_64)", "127.0.0.1"),
    ]


@pytest.fixture
def buffer(settings: Any) -> Any:
    """The event buffer on the real Redis (a database of its own), emptied around the test."""
    import redis

    from channels import tracking_buffer
    from tests.conftest import REDIS

    settings.ENGAGEMENT_BUFFER_URL = REDIS
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter("engagement:*"):
        client.delete(key)
    yield tracking_buffer
    for key in client.scan_iter("engagement:*"):
        client.delete(key)


def test_buffered_hits_wait_in_redis_and_are_moved_once_even_after_a_crash(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
    buffer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [reader] = add_subscribers(topic, 1)
    send(topic, django_capture_on_commit_callbacks)
    pixel = first_tracked(sink, reader.email, "o")
    for _ in range(3):
        assert client.get(pixel, HTTP_USER_AGENT="Mozilla/5.0 (X11)").status_code == 200
    assert not EngagementEvent.objects.exists()  # in Redis, not yet in the table
    assert buffer.pending() == 3

    # A worker dies after inserting and before trimming the list: the next move inserts the
    # same events again, for nothing.
    redis_client = buffer.client()
    monkeypatch.setattr(type(redis_client), "ltrim", lambda *args, **kwargs: None)
    assert buffer.move() == 3
    monkeypatch.undo()
    assert buffer.move() == 3
    assert buffer.pending() == 0
    assert EngagementEvent.objects.count() == 3
    assert set(EngagementEvent.objects.values_list("user_agent", flat=True)) == {
        "Mozilla/5.0 (X11)"
    }


def test_a_hit_redis_refuses_is_written_directly(
    topic: Topic,
    tracked_channel: Channel,
    sink: SmtpSink,
    django_capture_on_commit_callbacks: Any,
    client: Client,
    settings: Any,
) -> None:
    [reader] = add_subscribers(topic, 1)
    send(topic, django_capture_on_commit_callbacks)
    pixel = first_tracked(sink, reader.email, "o")
    settings.ENGAGEMENT_BUFFER_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    assert client.get(pixel).status_code == 200
    assert EngagementEvent.objects.count() == 1
