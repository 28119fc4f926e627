from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from publishing.models import Topic
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.factories import SubscriberFactory, SubscriptionFactory, SuppressionFactory
from tests.subscribers.conftest import link_in

pytestmark = pytest.mark.django_db


def sign_up(client: Client, email: str, topics: list[Topic], **extra: str) -> Any:
    data = {"email": email, "name": "Bob", "topics": [t.pk for t in topics], **extra}
    return client.post("/subscribe/", data, REMOTE_ADDR="203.0.113.77", HTTP_USER_AGENT="UA/1")


def test_it_shows_the_sign_up_page_with_public_topics_only(client: Client, news: Topic) -> None:
    Topic.objects.create(name="Internal", slug="internal", is_public=False)

    response = client.get("/subscribe/")

    assert response.status_code == 200
    assert b"News" in response.content
    assert b"Internal" not in response.content
    assert b'name="website"' in response.content  # the honeypot


def test_it_shows_the_sign_up_page_in_french(client: Client, news: Topic) -> None:
    response = client.get("/subscribe/?language=fr")

    assert response.status_code == 200
    assert b"Adresse e-mail" in response.content
    assert response["Content-Language"] == "fr"


def test_it_creates_a_pending_subscriber_and_emails_a_confirmation_link(
    client: Client,
    news: Topic,
    events: Topic,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_up(client, "Bob@Example.com", [news])

    assert response.status_code == 302
    assert response["Location"].startswith("/subscribe/thanks/")
    subscriber = Subscriber.objects.get()
    assert subscriber.email == "Bob@Example.com"
    assert subscriber.status == Subscriber.Status.PENDING
    assert subscriber.confirmed_at is None
    assert list(subscriber.subscriptions.values_list("topic__slug", flat=True)) == ["news"]
    event = ConsentEvent.objects.get()
    assert event.action == ConsentEvent.Action.SIGNUP
    assert event.form_version == "signup-2026-12"
    assert event.ip_address == "203.0.113.0"  # truncated to the /24
    assert event.user_agent == "UA/1"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["Bob@Example.com"]
    assert "Confirm" in message.subject
    assert link_in(message, "confirm").startswith("/confirm/")
    assert message.alternatives[0][1] == "text/html"


@override_settings(SITE_URL="https://news.example.org", DELIVERY_MESSAGE_ID_DOMAIN="")
def test_the_confirmation_emails_message_id_is_at_the_sites_host_not_localhost(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "bob@example.com", [news])

    [message] = mail.outbox
    message_id = message.message()["Message-ID"]
    assert message_id.endswith("@news.example.org>")
    assert message.message()["Message-ID"] == message_id  # fixed, not made again per render


def test_a_confirmation_to_someone_who_gave_no_name_says_hello_without_a_gap(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "noname@example.com", [news], name="")

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert isinstance(message, mail.EmailMultiAlternatives)
    html = message.alternatives[0][0]
    assert str(message.body).startswith("Hello,\n")
    # The greeting paragraph carries its inlined style now (the publications' design).
    assert re.search(r"<p [^>]*>Hello,</p>", str(html))
    assert "Hello ," not in str(message.body) + str(html)


def test_it_writes_the_confirmation_in_the_language_of_the_page(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "marie@example.com", [news], language="fr")

    assert Subscriber.objects.get().locale == "fr"
    assert "Confirmez" in mail.outbox[0].subject


def test_it_requires_a_valid_email_and_a_topic(client: Client, news: Topic) -> None:
    response = client.post("/subscribe/", {"email": "not-an-address", "topics": []})

    assert response.status_code == 400
    assert b"Enter a valid email address." in response.content
    assert b"Choose at least one topic." in response.content
    assert not Subscriber.objects.exists()


def test_it_refuses_an_address_longer_than_254_characters(client: Client, news: Topic) -> None:
    email = "a" * 64 + "@" + ("b" * 60 + ".") * 3 + "example.com"
    assert len(email) > 254

    response = client.post("/subscribe/", {"email": email, "topics": [news.pk]})

    assert response.status_code == 400
    assert not Subscriber.objects.exists()


def test_it_answers_a_filled_honeypot_like_a_sign_up_but_does_nothing(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_up(client, "bot@example.com", [news], website="http://spam.example")

    assert response.status_code == 302
    assert response["Location"].startswith("/subscribe/thanks/")
    assert not Subscriber.objects.exists()
    assert mail.outbox == []


def test_it_answers_an_active_address_exactly_like_a_new_one_and_sends_a_reminder(
    client: Client,
    news: Topic,
    events: Topic,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    bob = SubscriberFactory.create(email="bob@example.com")
    SubscriptionFactory.create(subscriber=bob, topic=events)
    with django_capture_on_commit_callbacks(execute=True):
        fresh = sign_up(client, "new@example.com", [news])
        again = sign_up(client, "BOB@example.com", [news])

    assert again.status_code == fresh.status_code == 302
    assert again["Location"] == fresh["Location"]
    assert client.get(again["Location"]).content == client.get(fresh["Location"]).content
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.ACTIVE
    assert list(bob.subscriptions.values_list("topic__slug", flat=True)) == ["events"]
    reminder = mail.outbox[1]
    assert reminder.to == ["bob@example.com"]
    assert "already subscribed" in reminder.subject
    assert link_in(reminder, "preferences").startswith("/preferences/")
    assert "/confirm/" not in str(reminder.body)


def test_it_sends_at_most_three_emails_a_day_to_one_address(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            sign_up(client, "victim@example.com", [news])
    assert len(mail.outbox) == 3
    assert Subscriber.objects.count() == 1
    assert ConsentEvent.objects.filter(detail__email_sent=False).count() == 2

    later = timezone.now() + timedelta(days=1, minutes=1)
    with time_machine.travel(later), django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "victim@example.com", [news])
    assert len(mail.outbox) == 4


def test_it_sends_nothing_to_an_address_suppressed_for_a_complaint(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    SuppressionFactory.create(email="angry@example.com", reason=Suppression.Reason.COMPLAINED)

    with django_capture_on_commit_callbacks(execute=True):
        response = sign_up(client, "angry@example.com", [news])

    assert response.status_code == 302
    assert mail.outbox == []
    assert Suppression.objects.get().reason == Suppression.Reason.COMPLAINED


@override_settings(SUBSCRIBERS_SIGNUP_RATE_IP="3/h", SUBSCRIBERS_SIGNUP_RATE_EMAIL="100/h")
def test_it_limits_sign_ups_per_ip_with_a_clear_429_page(client: Client, news: Topic) -> None:
    for n in range(3):
        assert sign_up(client, f"p{n}@example.com", [news]).status_code == 302

    response = sign_up(client, "p4@example.com", [news])

    assert response.status_code == 429
    assert b"Too many requests" in response.content
    assert Subscriber.objects.count() == 3


@override_settings(SUBSCRIBERS_SIGNUP_RATE_IP="3/h", SUBSCRIBERS_SIGNUP_RATE_EMAIL="100/h")
def test_the_429s_retry_after_is_the_second_the_hourly_window_exceeded_ends(
    client: Client, news: Topic
) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for n in range(4):
            response = sign_up(client, f"p{n}@example.com", [news])
    retry_after = int(response["Retry-After"])

    assert response.status_code == 429
    assert 0 < retry_after <= 3600
    with time_machine.travel(start + timedelta(seconds=retry_after - 1), tick=False):
        assert sign_up(client, "early@example.com", [news]).status_code == 429
    with time_machine.travel(start + timedelta(seconds=retry_after), tick=False):
        assert sign_up(client, "on-time@example.com", [news]).status_code == 302


@override_settings(SUBSCRIBERS_SIGNUP_RATE_IP="100/h", SUBSCRIBERS_SIGNUP_RATE_EMAIL="2/h")
def test_the_address_limits_retry_after_is_its_own_windows_end(client: Client, news: Topic) -> None:
    data = {"email": "target@example.com", "topics": [news.pk]}
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for ip in ("198.51.100.1", "198.51.100.2", "198.51.100.3"):
            response = client.post("/subscribe/", data, REMOTE_ADDR=ip)
    retry_after = int(response["Retry-After"])

    assert response.status_code == 429
    with time_machine.travel(start + timedelta(seconds=retry_after - 1), tick=False):
        assert client.post("/subscribe/", data, REMOTE_ADDR="198.51.100.4").status_code == 429
    with time_machine.travel(start + timedelta(seconds=retry_after), tick=False):
        assert client.post("/subscribe/", data, REMOTE_ADDR="198.51.100.5").status_code == 302


@override_settings(SUBSCRIBERS_SIGNUP_RATE_IP="100/h", SUBSCRIBERS_SIGNUP_RATE_EMAIL="2/h")
def test_it_limits_sign_ups_per_address_from_any_ip(client: Client, news: Topic) -> None:
    data = {"email": "target@example.com", "topics": [news.pk]}
    assert client.post("/subscribe/", data, REMOTE_ADDR="198.51.100.1").status_code == 302
    assert client.post("/subscribe/", data, REMOTE_ADDR="198.51.100.2").status_code == 302

    response = client.post(
        "/subscribe/", {**data, "email": "TARGET@example.com"}, REMOTE_ADDR="198.51.100.3"
    )

    assert response.status_code == 429
    assert ConsentEvent.objects.count() == 2


def test_it_lets_an_unsubscribed_person_sign_up_again_through_double_opt_in(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    bob = SubscriberFactory.create(email="bob@example.com", status=Subscriber.Status.UNSUBSCRIBED)
    SuppressionFactory.create(email="bob@example.com", reason=Suppression.Reason.UNSUBSCRIBED)

    with django_capture_on_commit_callbacks(execute=True):
        sign_up(client, "bob@example.com", [news])

    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.PENDING
    assert Suppression.objects.filter(email_hash=bob.email_hash).exists()  # until confirmed
    assert "/confirm/" in str(mail.outbox[0].body)
