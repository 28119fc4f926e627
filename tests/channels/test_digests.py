"""Daily and weekly digests (decision 0025): who gets one, what it lists, exactly once, and
that it really goes out through the engine to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.test import Client
from django_q.models import Schedule

from channels import digests
from channels.engine import batches
from channels.models import Channel, Delivery, Digest
from publishing.models import Topic
from subscribers import services as subscriber_services
from subscribers.models import Subscriber, Subscription, Suppression, email_hash
from tests.channels.conftest import SmtpSink, add_subscribers, body
from tests.channels.digests_support import (
    DAILY,
    MONDAY,
    WEDNESDAY,
    WEEKLY,
    listed_titles,
    messages_to,
    parse,
    publish,
    run,
    subscriber,
)
from tests.concurrency import run_at_once
from tests.config.test_settings import production_environment, run_manage
from tests.factories import TopicFactory


@pytest.mark.django_db
def test_it_sends_a_daily_subscriber_one_digest_of_the_days_matching_publications(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    other = cast(Topic, TopicFactory(slug="other", name="Other"))
    daily = subscriber(topic, DAILY, "daily")
    immediate = subscriber(topic, Subscription.Frequency.IMMEDIATE, "now")
    publish(topic, WEDNESDAY - dt.timedelta(hours=25), "Too old")
    older = publish(topic, WEDNESDAY - dt.timedelta(hours=22), "Morning news")
    newer = publish(topic, WEDNESDAY - dt.timedelta(minutes=1), "Late news")
    publish(other, WEDNESDAY - dt.timedelta(hours=3), "Other topic")
    publish(topic, WEDNESDAY + dt.timedelta(minutes=2), "Next period")

    reports = run(WEDNESDAY + dt.timedelta(minutes=5))

    daily_report = next(r for r in reports if r.frequency == DAILY)
    assert (daily_report.candidates, daily_report.created) == (1, 1)
    digest = Digest.objects.get()
    assert (digest.subscriber, digest.frequency) == (daily, DAILY)
    assert (digest.period_start, digest.period_end) == (WEDNESDAY - dt.timedelta(days=1), WEDNESDAY)
    assert set(digest.publications.all()) == {older, newer}
    # The engine sent it over SMTP: one message, to the daily subscriber only.
    assert len(sink.messages) == 1
    assert sink.recipients == [daily.email]
    assert messages_to(sink, immediate.email) == []
    assert digest.delivery is not None
    digest.delivery.refresh_from_db()
    assert digest.delivery.kind == Delivery.Kind.DIGEST
    assert digest.delivery.status == Delivery.Status.SENT
    message = parse(sink.messages[0])
    text = body(sink.messages[0], "plain")
    assert listed_titles(text) == ["Late news", "Morning news"]  # newest first
    assert f"{settings.SITE_URL}/p/late-news/" in text
    assert "A short summary." in text
    html = body(sink.messages[0], "html")
    assert f'href="{settings.SITE_URL}/p/morning-news/"' in html
    assert "Hello Reader 0," in text and "Hello Reader 0," in html
    assert message["Subject"] == "Your daily digest from Publishing: 2 new publications"
    assert message["X-Delivery-ID"] == str(digest.delivery.pk)


@pytest.mark.django_db
def test_it_sends_a_weekly_subscriber_the_publications_of_the_week_on_the_weekday(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    weekly = subscriber(topic, WEEKLY, "weekly")
    publish(topic, MONDAY - dt.timedelta(days=8), "Last week")
    first = publish(topic, MONDAY - dt.timedelta(days=6), "Tuesday story")
    second = publish(topic, MONDAY - dt.timedelta(hours=1), "Monday story")

    # Tuesday: the weekly period that ended last is the one ending on Monday.
    reports = run(MONDAY + dt.timedelta(days=1, hours=2), frequencies=[WEEKLY])

    assert [r.created for r in reports] == [1]
    digest = Digest.objects.get()
    assert digest.period_end == MONDAY
    assert (digest.subscriber, digest.frequency) == (weekly, WEEKLY)
    assert digest.period_start == MONDAY - dt.timedelta(weeks=1)
    assert set(digest.publications.all()) == {first, second}
    assert sink.recipients == [weekly.email]
    text = body(sink.messages[0], "plain")
    assert listed_titles(text) == ["Monday story", "Tuesday story"]
    assert parse(sink.messages[0])["Subject"].startswith("Your weekly digest")


@pytest.mark.django_db
def test_it_sends_nothing_to_immediate_paused_unconfirmed_suppressed_or_unsubscribed(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    subscriber(topic, Subscription.Frequency.IMMEDIATE, "immediate")
    subscriber(topic, Subscription.Frequency.PAUSED, "paused")
    paused_until = subscriber(topic, DAILY, "until")
    Subscription.objects.filter(subscriber=paused_until).update(
        paused_until=WEDNESDAY.date() + dt.timedelta(days=1)
    )
    subscriber(topic, DAILY, "pending", status=Subscriber.Status.PENDING)
    subscriber(topic, DAILY, "gone", status=Subscriber.Status.UNSUBSCRIBED)
    suppressed = subscriber(topic, DAILY, "bounced")
    Suppression.objects.create(email_hash=suppressed.email_hash, reason="bounced")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")

    run(WEDNESDAY + dt.timedelta(minutes=1))

    assert list(Digest.objects.values_list("subscriber", flat=True)) == [reader.pk]
    assert sink.recipients == [reader.email]


@pytest.mark.django_db
def test_a_pause_that_ended_on_the_digest_day_lets_the_digest_go(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    back = subscriber(topic, DAILY, "back")
    Subscription.objects.filter(subscriber=back).update(paused_until=WEDNESDAY.date())
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")

    run(WEDNESDAY + dt.timedelta(minutes=1))

    assert sink.recipients == [back.email]


@pytest.mark.django_db
def test_it_sends_no_email_when_nothing_was_published(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    subscriber(topic, DAILY, "daily")
    subscriber(topic, WEEKLY, "weekly")
    other = cast(Topic, TopicFactory(slug="elsewhere"))
    publish(other, WEDNESDAY - dt.timedelta(hours=2), "Not for them")

    reports = run(WEDNESDAY + dt.timedelta(minutes=1))

    assert [r.created for r in reports] == [0, 0]
    assert not Digest.objects.exists()
    assert not Delivery.objects.exists()
    assert sink.messages == []


@pytest.mark.django_db
def test_running_twice_sends_each_digest_once(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    add_subscribers(topic, 3, frequency=DAILY)
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")

    first = run(WEDNESDAY + dt.timedelta(minutes=1))
    again = run(WEDNESDAY + dt.timedelta(minutes=2))
    an_hour_later = run(WEDNESDAY + dt.timedelta(hours=1))

    assert first[0].created == 3
    assert again[0].created == an_hour_later[0].created == 0
    assert Digest.objects.count() == Delivery.objects.count() == 3
    assert sorted(sink.delivery_ids().values()) == [1, 1, 1]


@pytest.mark.django_db
def test_the_next_digest_starts_where_the_last_ended_so_nothing_is_skipped_or_repeated(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    day1, day2, day4 = WEDNESDAY, WEDNESDAY + dt.timedelta(days=1), WEDNESDAY + dt.timedelta(days=3)
    before = publish(topic, day1 - dt.timedelta(hours=3), "Before day one")
    # Published after day one's period ended but before its run: it belongs to day two.
    between = publish(topic, day1 + dt.timedelta(minutes=10), "Between")
    run(day1 + dt.timedelta(minutes=30))
    after = publish(topic, day2 - dt.timedelta(hours=1), "Day two")
    run(day2 + dt.timedelta(minutes=5))
    # No run on day three (the workers were down): day four's digest starts at day two's end.
    late = publish(topic, day2 + dt.timedelta(hours=5), "Day three")
    later = publish(topic, day4 - dt.timedelta(hours=5), "Day four")
    run(day4 + dt.timedelta(minutes=5))

    rows = list(Digest.objects.filter(subscriber=reader).order_by("period_end"))
    assert [(d.period_start, d.period_end) for d in rows] == [
        (day1 - dt.timedelta(days=1), day1),
        (day1, day2),
        (day2, day4),
    ]
    assert [set(d.publications.all()) for d in rows] == [
        {before},
        {between, after},
        {late, later},
    ]
    texts = [body(raw, "plain") for raw in sink.messages]
    assert [listed_titles(t) for t in texts] == [
        ["Before day one"],
        ["Day two", "Between"],
        ["Day four", "Day three"],
    ]


@pytest.mark.django_db
def test_the_unsubscribe_link_and_one_click_headers_of_a_digest_work(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, client: Client
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    run(WEDNESDAY + dt.timedelta(minutes=1))

    message = parse(sink.messages[0])
    delivery = Delivery.objects.get()
    assert message["Message-ID"] == f"<delivery-{delivery.pk}@127.0.0.1>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Django folds a long header right after its colon: the value starts with that space.
    one_click = re.fullmatch(r"<(https?://[^>]+)>", message["List-Unsubscribe"].strip())
    assert one_click is not None
    text = body(sink.messages[0], "plain")
    unsubscribe = re.search(r"^Unsubscribe: (\S+)\r?$", text, re.MULTILINE)
    preferences = re.search(r"^Manage your preferences: (\S+)\r?$", text, re.MULTILINE)
    assert unsubscribe is not None and preferences is not None
    assert unsubscribe.group(1) == one_click.group(1)
    assert unsubscribe.group(1) in body(sink.messages[0], "html")

    assert client.get(urlsplit(preferences.group(1)).path).status_code == 200
    page = client.get(urlsplit(unsubscribe.group(1)).path)
    assert page.status_code == 200
    # The unsubscribe token cannot open the preference center (decision 0072).
    unsubscribe_token = urlsplit(one_click.group(1)).path.rstrip("/").rsplit("/", 1)[1]
    assert client.get(f"/preferences/{unsubscribe_token}/").status_code == 400
    assert unsubscribe_token not in preferences.group(1)
    # What a mailbox provider does with RFC 8058 headers: a POST with the one-click body.
    answer = client.post(urlsplit(one_click.group(1)).path, {"List-Unsubscribe": "One-Click"})
    assert answer.status_code in (200, 302)
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.UNSUBSCRIBED

    publish(topic, WEDNESDAY + dt.timedelta(hours=2), "More news")
    assert run(WEDNESDAY + dt.timedelta(days=1, minutes=1))[0].created == 0
    assert len(sink.messages) == 1


@pytest.mark.django_db
def test_a_digest_to_a_subscriber_without_a_name_says_hello_without_a_gap(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    reader = subscriber(topic, DAILY, "anonymous")
    Subscriber.objects.filter(pk=reader.pk).update(name="")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    run(WEDNESDAY + dt.timedelta(minutes=1))

    text = body(sink.messages[0], "plain")
    html = body(sink.messages[0], "html")
    assert text.startswith("Hello,")
    assert ">Hello,</p>" in html
    assert "Hello ," not in text + html


@pytest.mark.django_db
def test_a_digest_is_in_the_subscribers_language_and_format(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    french = subscriber(topic, DAILY, "french", locale="fr", email_format="text")
    french.name = ""
    french.save(update_fields=["name"])
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "Nouvelles")

    run(WEDNESDAY + dt.timedelta(minutes=1))

    message = parse(sink.messages[0])
    subject = message["Subject"].strip()  # folded after the colon, as Django folds long headers
    assert subject == "Votre résumé quotidien de Publishing : 1 nouvelle publication"
    assert message.get_body(preferencelist=("html",)) is None
    text = body(sink.messages[0], "plain")
    assert text.startswith("Bonjour,")
    assert "Se désabonner: " in text and "Gérer vos préférences: " in text


@pytest.mark.django_db
def test_a_digest_whose_reader_became_unreachable_before_sending_is_cancelled(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    end = digests.period_end(DAILY, WEDNESDAY + dt.timedelta(minutes=1))
    items = digests.published_between(end - dt.timedelta(days=1), end)
    digest = digests.create_digest(reader.pk, DAILY, end, items, smtp_channel)
    assert digest is not None and digest.delivery is not None
    Suppression.objects.create(email_hash=email_hash(reader.email), reason="complained")

    report = batches.send_batch(smtp_channel.pk)

    assert report.cancelled == 1
    digest.delivery.refresh_from_db()
    assert digest.delivery.status == Delivery.Status.CANCELLED
    assert sink.messages == []


@pytest.mark.django_db
def test_erasing_a_subscriber_scrubs_their_digests(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    reader = subscriber(topic, DAILY, "reader")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    run(WEDNESDAY + dt.timedelta(minutes=1))

    subscriber_services.erase_subscriber(reader, subscriber_services.Origin(via="test"))

    delivery = Delivery.objects.get()
    assert (delivery.recipient, delivery.raw_message, delivery.subscriber) == ("", None, None)
    assert not Digest.objects.exists()


@pytest.mark.django_db
def test_a_migration_schedules_the_digests_every_quarter_hour_and_read_hours_daily() -> None:
    schedule = Schedule.objects.get(name="channels.send_digests")
    assert (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats) == (
        "channels.tasks.send_digests",
        Schedule.MINUTES,
        15,
        -1,
    )
    # On a quarter hour: the local hours of zones offset by :30 and :45 begin then.
    assert schedule.next_run.minute % 15 == 0 and schedule.next_run.second == 0
    learner = Schedule.objects.get(name="channels.refresh_read_hours")
    assert (learner.func, learner.schedule_type, learner.repeats) == (
        "channels.tasks.refresh_read_hours",
        Schedule.DAILY,
        -1,
    )


@pytest.mark.django_db
def test_the_scheduled_task_sends_the_due_digests(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    from channels import tasks

    subscriber(topic, DAILY, "daily")
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    with time_machine.travel(WEDNESDAY + dt.timedelta(minutes=3), tick=False):
        assert tasks.send_digests() == 1
        assert tasks.send_digests() == 0
    assert len(sink.messages) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_concurrent_runs_send_each_digest_exactly_once(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    assert connection.vendor == "postgresql"
    add_subscribers(topic, 30, frequency=DAILY)
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")

    def worker() -> int:
        return digests.send_digests(frequencies=[DAILY])[0].created

    with time_machine.travel(WEDNESDAY + dt.timedelta(minutes=1), tick=True):
        outcomes = run_at_once(worker, worker)
    created, errors = outcomes.results, outcomes.errors

    assert errors == []
    assert sum(created) == 30
    assert Digest.objects.count() == Delivery.objects.count() == 30
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == 30
    assert len(sink.delivery_ids()) == 30
    assert set(sink.delivery_ids().values()) == {1}


@pytest.mark.django_db
def test_a_run_killed_midway_leaves_no_half_digest_and_the_next_run_finishes(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_subscribers(topic, 3, frequency=DAILY)
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "News")
    build = digests.build_digest_email
    calls: list[int] = []

    def dies_on_the_second(*args: Any, **kwargs: Any) -> tuple[bytes, list[str]]:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("the worker is killed")
        return build(*args, **kwargs)

    monkeypatch.setattr(digests, "build_digest_email", dies_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        run(WEDNESDAY + dt.timedelta(minutes=1))
    # The first subscriber's digest committed; the second's Delivery rolled back with it.
    assert Digest.objects.count() == Delivery.objects.count() == 1

    monkeypatch.setattr(digests, "build_digest_email", build)
    assert run(WEDNESDAY + dt.timedelta(minutes=2))[0].created == 2
    assert Digest.objects.count() == Delivery.objects.count() == 3
    assert Delivery.objects.filter(raw_message__isnull=True).count() == 0
    run(WEDNESDAY + dt.timedelta(minutes=3))
    assert len(sink.delivery_ids()) == 3
    assert set(sink.delivery_ids().values()) == {1}


@pytest.mark.parametrize(
    ("now", "frequency", "end"),
    [
        # DIGEST_HOUR 18 and DIGEST_WEEKDAY friday (4); 6 March 2026 is a Friday.
        ("2026-03-06T17:59", DAILY, "2026-03-05T18:00"),
        ("2026-03-06T18:00", DAILY, "2026-03-06T18:00"),
        ("2026-03-06T17:59", WEEKLY, "2026-02-27T18:00"),
        ("2026-03-06T18:30", WEEKLY, "2026-03-06T18:00"),
        ("2026-03-10T09:00", WEEKLY, "2026-03-06T18:00"),
    ],
)
def test_a_period_ends_at_the_configured_hour_and_weekday(
    settings: Any, now: str, frequency: str, end: str
) -> None:
    settings.DIGEST_HOUR = 18
    settings.DIGEST_WEEKDAY = 4
    moment = dt.datetime.fromisoformat(now).replace(tzinfo=dt.UTC)
    expected = dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC)
    assert digests.period_end(frequency, moment) == expected


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"DIGEST_HOUR": "24"}, "DIGEST_HOUR must be an hour from 0 to 23"),
        ({"DIGEST_WEEKDAY": "funday"}, "DIGEST_WEEKDAY must be a day name"),
    ],
)
def test_digest_settings_refuse_a_bad_value_naming_the_variable(
    variables: dict[str, str], expected: str
) -> None:
    result = run_manage(production_environment(**variables), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert expected in result.stderr


def test_digest_settings_read_a_day_name_in_any_case() -> None:
    env = production_environment(DIGEST_HOUR="18", DIGEST_WEEKDAY="Friday")
    result = run_manage(
        env,
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DIGEST_HOUR, settings.DIGEST_WEEKDAY)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "18 4"


@pytest.mark.django_db
def test_a_tracked_digest_carries_click_urls_that_lead_to_its_publications(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, client: Client
) -> None:
    from channels import tracking
    from channels.models import EngagementEvent

    smtp_channel.tracking = True
    smtp_channel.save(update_fields=["tracking"])
    tracked = subscriber(topic, DAILY, "tracked")
    opted_out = subscriber(topic, DAILY, "private")
    Subscriber.objects.filter(pk=opted_out.pk).update(tracking_opt_out=True)
    publish(topic, WEDNESDAY - dt.timedelta(hours=2), "Morning news")

    run(WEDNESDAY + dt.timedelta(minutes=5))

    [mine] = messages_to(sink, tracked.email)
    html = str(mine.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]
    clicks = re.findall(r'href="[^"]*(/t/c/\d+/g0/\d+/[\w-]+)"', html)
    assert clicks and f'href="{settings.SITE_URL}/p/morning-news/"' not in html
    assert re.search(r'src="[^"]*/t/o/\d+/[\w-]+\.gif"', html)
    assert "/preferences/" in html and "/unsubscribe/" in html  # the reader's own links stay
    followed = client.get(clicks[0])
    assert (followed.status_code, followed["Location"]) == (
        302,
        f"{settings.SITE_URL}/p/morning-news/",
    )
    assert EngagementEvent.objects.filter(kind="click", link_index=0).count() == 1
    assert client.get(clicks[0].rsplit("/", 2)[0] + "/99/x").status_code == 400
    # Another digest's (or no) delivery: the same position does not lead anywhere.
    _, _, _, delivery_id, ref, index, _ = clicks[0].split("/")
    elsewhere = f"/t/c/{int(delivery_id) + 100}/{ref}/{index}"
    signed = tracking.signer().sign(f"c:{int(delivery_id) + 100}:{ref}:{index}")
    assert client.get(f"{elsewhere}/{signed}").status_code == 400
    [theirs] = messages_to(sink, opted_out.email)
    their_html = str(theirs.get_body(preferencelist=("html",)).get_content())  # type: ignore[union-attr]
    assert "/t/c/" not in their_html
    assert f'href="{settings.SITE_URL}/p/morning-news/"' in their_html
