from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from publishing.models import Topic
from subscribers import services, tokens
from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression
from tests.factories import SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(news: Topic) -> Subscriber:
    subscriber = SubscriberFactory.create(email="bob@example.com", name="Bob")
    SubscriptionFactory.create(subscriber=subscriber, topic=news)
    return subscriber


def page(subscriber: Subscriber) -> str:
    return f"/preferences/{tokens.manage_token(subscriber.pk, subscriber.token_key)}/"


def choices(topics: list[Topic], frequency: str = "immediate", **extra: str) -> dict[str, object]:
    return {
        "action": "save",
        "name": "Bob",
        "topics": [t.pk for t in topics],
        "frequency": frequency,
        "paused_until": "",
        "email_format": "html",
        "locale": "en",
        "timezone": "Europe/Paris",
        **extra,
    }


def test_it_shows_the_choices_and_what_we_store(client: Client, bob: Subscriber) -> None:
    response = client.get(page(bob))

    assert response.status_code == 200
    assert b"bob@example.com" in response.content
    assert b"What we store about you" in response.content
    assert b"News" in response.content
    assert response["Cache-Control"] == "no-store"


def test_it_changes_topics_frequency_and_format_and_logs_it(
    client: Client, bob: Subscriber, news: Topic, events: Topic
) -> None:
    response = client.post(page(bob), choices([events], "weekly", email_format="text"))

    assert response.status_code == 302
    assert response["Location"].endswith("?done=saved")
    subscriptions = list(bob.subscriptions.values_list("topic__slug", "frequency"))
    assert subscriptions == [("events", "weekly")]
    bob.refresh_from_db()
    assert bob.email_format == "text"
    assert bob.timezone == "Europe/Paris"
    event = ConsentEvent.objects.get(action=ConsentEvent.Action.PREFERENCES)
    assert event.detail["topics"] == ["events"]
    assert event.form_version == "preferences-2026-12"
    assert b"Your preferences are saved." in client.get(response["Location"]).content


def test_it_pauses_until_a_date_and_resumes_the_previous_frequency_after_it(
    client: Client, bob: Subscriber, news: Topic
) -> None:
    client.post(page(bob), choices([news], "daily"))
    until = timezone.localdate() + timedelta(days=10)

    client.post(page(bob), choices([news], "paused", paused_until=until.isoformat()))

    subscription = bob.subscriptions.get()
    assert subscription.frequency == Subscription.Frequency.DAILY
    assert subscription.paused_until == until
    assert services.current_frequency(bob, timezone.localdate()) == ("paused", until)
    assert services.current_frequency(bob, until) == ("daily", None)
    today = timezone.localdate()
    assert not Subscription.objects.receiving_immediately(today).exists()


def test_it_keeps_an_immediate_subscriber_out_of_fan_out_while_paused(
    client: Client, bob: Subscriber, news: Topic
) -> None:
    today = timezone.localdate()
    until = today + timedelta(days=3)

    client.post(page(bob), choices([news], "paused", paused_until=until.isoformat()))

    assert not Subscription.objects.receiving_immediately(today).exists()
    assert Subscription.objects.receiving_immediately(until).get().subscriber == bob


def test_it_pauses_without_a_date_until_changed(
    client: Client, bob: Subscriber, news: Topic
) -> None:
    client.post(page(bob), choices([news], "paused"))

    subscription = bob.subscriptions.get()
    assert subscription.frequency == Subscription.Frequency.PAUSED
    assert subscription.paused_until is None


@pytest.mark.parametrize(
    ("days", "message"), [(0, b"Choose a date after today."), (400, b"at most 366 days")]
)
def test_it_refuses_a_pause_date_in_the_past_or_too_far(
    client: Client, bob: Subscriber, news: Topic, days: int, message: bytes
) -> None:
    until = date.today() + timedelta(days=days)  # noqa: DTZ011

    response = client.post(page(bob), choices([news], "paused", paused_until=until.isoformat()))

    assert response.status_code == 400
    assert message in response.content
    assert bob.subscriptions.get().frequency == Subscription.Frequency.IMMEDIATE


def test_it_refuses_a_topic_that_is_not_offered(client: Client, bob: Subscriber) -> None:
    hidden = Topic.objects.create(name="Staff", slug="staff", is_public=False)

    response = client.post(page(bob), choices([hidden]))

    assert response.status_code == 400
    assert not bob.subscriptions.filter(topic=hidden).exists()


def test_it_needs_the_csrf_token_to_change_anything(bob: Subscriber, news: Topic) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(page(bob), choices([], "weekly"))

    assert response.status_code == 403
    assert bob.subscriptions.get().frequency == Subscription.Frequency.IMMEDIATE


def test_it_downloads_everything_stored_as_json(client: Client, bob: Subscriber) -> None:
    services.unsubscribe(bob, services.Origin(via="test"))

    response = client.get(page(bob) + "data.json")

    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["email"] == "bob@example.com"
    assert data["status"] == "unsubscribed"
    assert data["subscriptions"][0]["topic"] == "news"
    assert [event["action"] for event in data["consent_events"]] == ["unsubscribe"]


def test_it_unsubscribes_from_everything_and_subscribes_again(
    client: Client, bob: Subscriber
) -> None:
    response = client.post(page(bob), {"action": "unsubscribe"})

    assert response.status_code == 302
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.UNSUBSCRIBED
    assert Suppression.objects.get().reason == Suppression.Reason.UNSUBSCRIBED
    assert b"Subscribe again" in client.get(page(bob)).content

    response = client.post(page(bob), {"action": "resubscribe"}, follow=True)

    assert b"You are subscribed again." in response.content
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()
    assert bob.subscriptions.count() == 1


def test_it_does_not_resubscribe_an_address_that_bounced(client: Client, bob: Subscriber) -> None:
    services.unsubscribe(bob, services.Origin(via="test"))
    Suppression.objects.update(reason=Suppression.Reason.BOUNCED)

    response = client.post(page(bob), {"action": "resubscribe"}, follow=True)

    assert b"You are subscribed again." not in response.content
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.UNSUBSCRIBED


@pytest.mark.parametrize("suffix", ["", "data.json", "erase/"])
def test_it_shows_a_clear_page_for_a_forged_link(
    client: Client, bob: Subscriber, suffix: str
) -> None:
    token = tokens.manage_token(bob.pk, bob.token_key)
    forged = tokens.manage_token(bob.pk, "00000000-0000-4000-8000-000000000000")

    for bad in (token[:-3] + "xyz", forged, "nonsense"):
        response = client.get(f"/preferences/{bad}/{suffix}")
        assert response.status_code == 400
        assert b"This link is not valid" in response.content


def test_it_shows_the_page_in_the_subscribers_language(client: Client, bob: Subscriber) -> None:
    Subscriber.objects.filter(pk=bob.pk).update(locale="fr")

    response = client.get(page(bob))

    assert "Vos préférences".encode() in response.content


def test_a_subscriber_opts_out_of_tracking_and_back_in(
    client: Client, bob: Subscriber, news: Topic
) -> None:
    shown = client.get(page(bob)).content.decode()
    assert "Do not count whether I open your emails or click their links" in shown
    assert "a tiny image" in shown  # the privacy text says what is counted and how
    assert "On where a channel counts them" in shown

    assert client.post(page(bob), choices([news], tracking_opt_out="on")).status_code == 302
    bob.refresh_from_db()
    assert bob.tracking_opt_out is True
    event = ConsentEvent.objects.get(action=ConsentEvent.Action.PREFERENCES)
    assert event.detail["tracking_opt_out"] is True
    shown = client.get(page(bob)).content.decode()
    assert 'name="tracking_opt_out" id="id_tracking_opt_out" checked' in shown
    assert "Off: you opted out" in shown

    # An unticked box is a "no" (browsers send nothing for it).
    assert client.post(page(bob), choices([news])).status_code == 302
    bob.refresh_from_db()
    assert bob.tracking_opt_out is False


def test_the_sign_up_form_announces_counting_and_the_way_out(client: Client) -> None:
    content = client.get("/subscribe/").content.decode()
    assert "count whether they are opened and which links are clicked" in content
    assert "you can turn that off in your preferences" in content
