"""Readers' "more like this" / "less like this" (decision 0080): the signed link's page, one
POST that records, forged and expired links, and the preference center's list and clearing."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.conf import settings
from django.test import Client

from publishing.models import Publication, Topic
from subscribers import tokens
from subscribers.models import ReaderFeedback, Subscriber
from tests.factories import PublicationFactory, SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(news: Topic) -> Subscriber:
    subscriber = SubscriberFactory.create(email="bob@example.com", name="Bob")
    SubscriptionFactory.create(subscriber=subscriber, topic=news)
    return subscriber


@pytest.fixture
def story(news: Topic) -> Publication:
    return PublicationFactory.create(title="March release notes", slug="march", topics=[news])


def link(subscriber: Subscriber, publication: Publication, choice: str = "more") -> str:
    token = tokens.feedback_token(subscriber.pk, subscriber.token_key, publication.pk)
    return f"/feedback/{token}/{choice}/"


def preferences(subscriber: Subscriber) -> str:
    return f"/preferences/{tokens.manage_token(subscriber.pk, subscriber.token_key)}/"


def test_its_get_shows_a_confirmation_page_and_records_nothing(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    response = client.get(link(bob, story))
    head = client.head(link(bob, story, "less"))

    assert response.status_code == 200 and head.status_code == 200
    page = response.content.decode()
    assert "You would like more publications like “March release notes”." in page
    assert 'method="post"' in page
    assert response["Cache-Control"] == "no-store"
    assert ReaderFeedback.objects.count() == 0


def test_one_post_records_the_choice_and_a_later_one_replaces_it(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    response = client.post(link(bob, story, "more"))

    assert response.status_code == 200
    assert "Noted: more publications like “March release notes”." in response.content.decode()
    row = ReaderFeedback.objects.get()
    assert (row.subscriber, row.publication, row.choice) == (bob, story, "more")

    client.post(link(bob, story, "less"))

    row = ReaderFeedback.objects.get()  # still one row: the latest choice wins
    assert row.choice == "less"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),
        lambda token: "x" + token,
    ],
)
def test_a_forged_link_shows_an_error_and_records_nothing(
    client: Client, bob: Subscriber, story: Publication, tamper: object
) -> None:
    token = tokens.feedback_token(bob.pk, bob.token_key, story.pk)
    forged = tamper(token)  # type: ignore[operator]

    response = client.post(f"/feedback/{forged}/more/")
    shown = client.get(f"/feedback/{forged}/more/")

    assert response.status_code == 400 and shown.status_code == 400
    assert "This link is not valid" in response.content.decode()
    assert "Nothing was recorded." in response.content.decode()
    assert ReaderFeedback.objects.count() == 0


def test_another_kind_of_token_is_not_a_feedback_link(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    manage = tokens.manage_token(bob.pk, bob.token_key)

    response = client.post(f"/feedback/{manage}/more/")

    assert response.status_code == 400
    assert ReaderFeedback.objects.count() == 0


def test_an_expired_link_says_so_and_records_nothing(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    sent = dt.datetime(2026, 1, 1, 8, 0, tzinfo=dt.UTC)
    with time_machine.travel(sent, tick=False):
        url = link(bob, story)
    days = settings.FEEDBACK_LINK_MAX_AGE_DAYS

    with time_machine.travel(sent + dt.timedelta(days=days - 1), tick=False):
        assert client.get(url).status_code == 200
    with time_machine.travel(sent + dt.timedelta(days=days, minutes=1), tick=False):
        response = client.post(url)

    assert response.status_code == 410
    page = response.content.decode()
    assert "This link has expired" in page
    assert f"links work for {days} days" in page
    assert "Nothing was recorded." in page
    assert ReaderFeedback.objects.count() == 0


def test_an_unknown_choice_is_not_found(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    response = client.post(link(bob, story, "maybe"))

    assert response.status_code == 404
    assert ReaderFeedback.objects.count() == 0


def test_a_rotated_token_key_invalidates_the_link(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    url = link(bob, story)
    Subscriber.objects.filter(pk=bob.pk).update(token_key="00000000-0000-0000-0000-000000000001")

    assert client.post(url).status_code == 400
    assert ReaderFeedback.objects.count() == 0


def test_the_pages_are_in_the_subscribers_language(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    Subscriber.objects.filter(pk=bob.pk).update(locale="fr")

    page = client.get(link(bob, story, "less")).content.decode()

    assert "Vous aimeriez moins de publications comme « March release notes »." in page


def test_the_preference_center_lists_likes_and_dislikes_and_clears_them(
    client: Client, bob: Subscriber, story: Publication, news: Topic
) -> None:
    other = PublicationFactory.create(title="Gardening tips", slug="gardening", topics=[news])
    third = PublicationFactory.create(title="Office party", slug="party", topics=[news])
    client.post(link(bob, story, "more"))
    client.post(link(bob, other, "less"))
    client.post(link(bob, third, "more"))

    page = client.get(preferences(bob)).content.decode()

    assert "What you told us you like" in page
    assert "More like this:" in page and "Less like this:" in page
    for title in ("March release notes", "Gardening tips", "Office party"):
        assert title in page

    response = client.post(
        preferences(bob), {"action": "clear_feedback", "publication": str(other.pk)}
    )

    assert response.status_code == 302
    assert response["Location"].endswith("?done=feedback_cleared#feedback")
    assert set(ReaderFeedback.objects.values_list("publication__slug", flat=True)) == {
        "march",
        "party",
    }
    page = client.get(response["Location"]).content.decode()
    assert "Gardening tips" not in page
    assert "What you told us about those publications is forgotten." in page

    client.post(preferences(bob), {"action": "clear_feedback"})

    assert ReaderFeedback.objects.count() == 0
    assert "Nothing yet." in client.get(preferences(bob)).content.decode()


def test_clearing_touches_only_the_readers_own_feedback(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    alice = SubscriberFactory.create(email="alice@example.com")
    client.post(link(alice, story, "more"))
    client.post(link(bob, story, "more"))

    client.post(preferences(bob), {"action": "clear_feedback"})

    assert list(ReaderFeedback.objects.values_list("subscriber__email", flat=True)) == [
        "alice@example.com"
    ]


def test_erasing_a_subscriber_erases_their_feedback(
    bob: Subscriber, story: Publication, client: Client
) -> None:
    client.post(link(bob, story, "more"))

    bob.delete()

    assert ReaderFeedback.objects.count() == 0


def test_the_data_download_includes_the_feedback(
    client: Client, bob: Subscriber, story: Publication
) -> None:
    client.post(link(bob, story, "more"))

    data = client.get(preferences(bob) + "data.json").json()

    assert [(row["publication"], row["choice"]) for row in data["reader_feedback"]] == [
        ("march", "more")
    ]
