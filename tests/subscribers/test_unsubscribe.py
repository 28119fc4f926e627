from __future__ import annotations

import pytest
from django.test import Client

from subscribers import services, tokens
from subscribers.models import ConsentEvent, Subscriber, Suppression
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob() -> Subscriber:
    return SubscriberFactory.create(email="bob@example.com")


def url(subscriber: Subscriber) -> str:
    return f"/unsubscribe/{tokens.unsubscribe_token(subscriber.pk, subscriber.token_key)}/"


def legacy_url(subscriber: Subscriber) -> str:
    """An email sent before decision 0072 put the preference token in its unsubscribe link."""
    return f"/unsubscribe/{tokens.manage_token(subscriber.pk, subscriber.token_key)}/"


def test_it_shows_a_button_on_get_and_unsubscribes_nobody(bob: Subscriber) -> None:
    client = Client()

    response = client.get(url(bob))
    client.head(url(bob))

    assert response.status_code == 200
    assert b"Unsubscribe from everything" in response.content
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


def test_it_unsubscribes_at_once_on_an_rfc_8058_one_click_post(bob: Subscriber) -> None:
    # A mailbox provider: no cookie, no CSRF token, no second click.
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        url(bob),
        "List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        REMOTE_ADDR="192.0.2.44",
    )

    assert response.status_code == 200
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.UNSUBSCRIBED
    assert bob.unsubscribed_at is not None
    assert Suppression.objects.get().email_hash == bob.email_hash
    event = ConsentEvent.objects.get()
    assert event.action == ConsentEvent.Action.UNSUBSCRIBE
    assert event.detail["via"] == "one-click"
    assert event.ip_address == "192.0.2.0"


def test_it_accepts_the_one_click_post_as_multipart_form_data(bob: Subscriber) -> None:
    response = Client(enforce_csrf_checks=True).post(url(bob), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.UNSUBSCRIBED


def test_it_is_idempotent(bob: Subscriber) -> None:
    client = Client(enforce_csrf_checks=True)
    first = client.post(url(bob), {"List-Unsubscribe": "One-Click"})
    second = client.post(url(bob), {"List-Unsubscribe": "One-Click"})

    assert first.status_code == second.status_code == 200
    assert ConsentEvent.objects.count() == 1
    assert Suppression.objects.count() == 1


def test_it_refuses_a_tampered_token_and_changes_nothing(bob: Subscriber) -> None:
    token = tokens.unsubscribe_token(bob.pk, bob.token_key)
    other = SubscriberFactory.create()
    tampered = tokens.unsubscribe_token(other.pk, bob.token_key)  # right key, wrong subscriber

    for bad in (token[:-4] + "abcd", tampered):
        response = Client().post(f"/unsubscribe/{bad}/", {"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400
        assert b"This link is not valid" in response.content
    bob.refresh_from_db()
    other.refresh_from_db()
    assert bob.status == other.status == Subscriber.Status.ACTIVE


def test_it_answers_an_erased_subscribers_link_as_already_unsubscribed(bob: Subscriber) -> None:
    link = url(bob)
    services.erase_subscriber(bob, services.Origin(via="test"))

    response = Client().post(link, {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    assert b"You are unsubscribed" in response.content


def test_the_preference_token_no_longer_unsubscribes_through_the_one_click_post(
    bob: Subscriber,
) -> None:
    response = Client(enforce_csrf_checks=True).post(
        legacy_url(bob), {"List-Unsubscribe": "One-Click"}
    )

    assert response.status_code == 400
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.ACTIVE
    assert not Suppression.objects.exists()


def test_an_old_emails_preference_token_still_shows_the_page_whose_button_unsubscribes(
    bob: Subscriber,
) -> None:
    client = Client(enforce_csrf_checks=True)

    page = client.get(legacy_url(bob))

    assert page.status_code == 200
    unsubscribe = tokens.unsubscribe_token(bob.pk, bob.token_key)
    assert f'action="/unsubscribe/{unsubscribe}/"'.encode() in page.content
    response = client.post(f"/unsubscribe/{unsubscribe}/", {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.UNSUBSCRIBED


def test_the_unsubscribe_token_opens_neither_the_preference_center_nor_the_data_nor_erasure(
    bob: Subscriber,
) -> None:
    token = tokens.unsubscribe_token(bob.pk, bob.token_key)
    client = Client()

    page = client.get(f"/unsubscribe/{token}/")
    answers = [
        client.get(f"/preferences/{token}/"),
        client.get(f"/preferences/{token}/data.json"),
        client.get(f"/preferences/{token}/erase/"),
        client.post(f"/preferences/{token}/erase/"),
    ]

    assert b"/preferences/" not in page.content
    assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
    assert Subscriber.objects.filter(pk=bob.pk).exists()
