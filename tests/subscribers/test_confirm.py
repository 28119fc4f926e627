from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.test import Client, override_settings
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from publishing.models import Topic
from subscribers import tokens
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.factories import PendingSubscriberFactory, SuppressionFactory
from tests.subscribers.conftest import link_in

pytestmark = pytest.mark.django_db


def signed_up(
    client: Client, news: Topic, callbacks: DjangoCaptureOnCommitCallbacks, email: str
) -> str:
    with callbacks(execute=True):
        client.post("/subscribe/", {"email": email, "topics": [news.pk]})
    return link_in(mail.outbox[-1], "confirm")


def test_it_shows_a_button_on_get_and_changes_nothing(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")

    response = client.get(link)
    client.head(link)

    assert response.status_code == 200
    assert b'<form method="post"' in response.content
    assert b"Confirm my subscription" in response.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING
    assert not ConsentEvent.objects.filter(action=ConsentEvent.Action.CONFIRM).exists()


def test_it_confirms_on_post_and_logs_consent(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")

    response = client.post(link, REMOTE_ADDR="2001:db8:1234:5678::1", HTTP_USER_AGENT="Firefox")

    assert response.status_code == 200
    assert b"You are subscribed" in response.content
    assert b"/preferences/" in response.content
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.ACTIVE
    assert subscriber.confirmed_at is not None
    event = ConsentEvent.objects.get(action=ConsentEvent.Action.CONFIRM)
    assert event.subscriber == subscriber
    assert event.ip_address == "2001:db8:1234::"  # truncated to the /48
    assert event.user_agent == "Firefox"
    assert event.detail["topics"] == ["news"]


def test_it_confirms_only_once(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")
    client.post(link)
    first = Subscriber.objects.get().confirmed_at

    response = client.post(link)

    assert response.status_code == 200
    assert Subscriber.objects.get().confirmed_at == first
    assert ConsentEvent.objects.filter(action=ConsentEvent.Action.CONFIRM).count() == 1


def test_it_refuses_an_expired_link_with_a_clear_page(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")

    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        page = client.get(link)
        response = client.post(link)

    assert page.status_code == response.status_code == 410
    assert b"This link has expired" in response.content
    assert b"7 days" in response.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


@override_settings(SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS=1)
def test_it_takes_the_link_lifetime_from_the_setting(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")
    assert "1 day" in str(mail.outbox[-1].body)

    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        response = client.post(link)

    assert response.status_code == 410


def test_it_refuses_a_tampered_link_with_a_clear_page(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")
    token = link.rstrip("/").rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")

    response = client.post(f"/confirm/{tampered}/")

    assert response.status_code == 400
    assert b"This link is not valid" in response.content
    assert Subscriber.objects.get().status == Subscriber.Status.PENDING


def test_it_refuses_a_manage_token_used_as_a_confirmation(client: Client) -> None:
    subscriber = PendingSubscriberFactory.create()
    manage = tokens.manage_token(subscriber.pk, subscriber.token_key)

    response = client.post(f"/confirm/{manage}/")

    assert response.status_code == 400
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.PENDING


def test_it_refuses_a_link_issued_before_the_token_key_was_rotated(client: Client) -> None:
    subscriber = PendingSubscriberFactory.create()
    token = tokens.confirmation_token(subscriber.pk, subscriber.token_key)
    Subscriber.objects.filter(pk=subscriber.pk).update(
        token_key="00000000-0000-4000-8000-000000000000"
    )

    assert client.post(f"/confirm/{token}/").status_code == 400


def test_it_lifts_the_suppression_of_an_address_that_confirms_again(client: Client) -> None:
    subscriber = PendingSubscriberFactory.create(email="back@example.com")
    SuppressionFactory.create(email="back@example.com", reason=Suppression.Reason.ERASED)
    token = tokens.confirmation_token(subscriber.pk, subscriber.token_key)

    client.post(f"/confirm/{token}/")

    assert not Suppression.objects.exists()
    subscriber.refresh_from_db()
    assert subscriber.status == Subscriber.Status.ACTIVE


def test_it_explains_an_expired_link_in_the_browsers_language(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "marie@example.com")

    with time_machine.travel(timezone.now() + timedelta(days=8)):
        response = client.get(link, HTTP_ACCEPT_LANGUAGE="fr")

    assert response.status_code == 410
    assert "Ce lien a expiré".encode() in response.content
    assert b"valables 7 jours" in response.content


def test_confirming_sends_one_welcome_email_in_the_publications_design(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    link = signed_up(client, news, django_capture_on_commit_callbacks, "bob@example.com")
    sent_before = len(mail.outbox)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(link)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(link)  # confirming again changes nothing, sends nothing

    assert len(mail.outbox) == sent_before + 1
    welcome = mail.outbox[-1]
    assert welcome.to == ["bob@example.com"]
    assert welcome.subject.startswith("Welcome to ")
    assert news.name in str(welcome.body)
    assert "Hello," in str(welcome.body)
    assert isinstance(welcome, EmailMultiAlternatives)
    html = str(welcome.alternatives[0][0])
    assert news.name in html
    assert 'style="' in html  # the shared styles, inlined as in publication emails
    assert link_in(welcome, "preferences")


def test_the_welcome_email_speaks_the_subscribers_language(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/subscribe/", {"email": "eve@example.com", "topics": [news.pk], "language": "fr"}
        )
    link = link_in(mail.outbox[-1], "confirm")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(link)
    welcome = mail.outbox[-1]
    assert welcome.subject.startswith("Bienvenue sur ")
    assert "Votre abonnement est confirmé. Vous recevrez :" in str(welcome.body)
