"""The subscribers API: double opt-in by default, import with a consent note, filters,
preferences, unsubscribe and erasure, all through subscribers.services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression, email_hash
from tests.api.conftest import ApiClient
from tests.factories import SubscriberFactory, SubscriptionFactory, SuppressionFactory, TopicFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def news() -> Any:
    return TopicFactory.create(slug="news")


def test_creating_without_a_consent_note_starts_a_double_opt_in(
    api: ApiClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/subscribers/", {"email": "Jane@Example.com", "topics": ["news"]}
        )
    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    subscriber = Subscriber.objects.get()
    assert subscriber.status == "pending" and subscriber.confirmed_at is None
    assert len(mail.outbox) == 1 and "/confirm/" in mail.outbox[0].body
    assert ConsentEvent.objects.get().action == "signup"


def test_creating_with_a_consent_note_imports_an_active_subscriber_without_email(
    api: ApiClient, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/subscribers/",
            {"email": "jo@example.com", "name": "Jo", "topics": ["news"], "consent_note": "Fair"},
        )
    assert response.status_code == 201
    assert response.json()["status"] == "active"
    assert response.json()["topics"] == ["news"]
    assert mail.outbox == []
    event = ConsentEvent.objects.get()
    assert event.action == "import" and event.detail["note"] == "Fair"


def test_an_import_never_brings_back_a_suppressed_address(api: ApiClient) -> None:
    SuppressionFactory.create(email_hash=email_hash("gone@example.com"), reason="erased")
    response = api.post(
        "/api/v1/subscribers/",
        {"email": "gone@example.com", "topics": ["news"], "consent_note": "List"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "not_imported"
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "not-an-address", "topics": ["news"]}, "email"),
        ({"email": "a" * 250 + "@example.com", "topics": ["news"]}, "email"),
        ({"email": "a@example.com", "topics": []}, "topics"),
        ({"email": "a@example.com", "topics": ["unknown"]}, "topics"),
        ({"email": "a@example.com", "topics": ["news"], "timezone": "Mars/Base"}, "timezone"),
        ({"email": "a@example.com", "topics": ["news"], "consent_note": "x" * 501}, "consent_note"),
    ],
)
def test_bad_input_names_the_field(api: ApiClient, body: dict[str, Any], field: str) -> None:
    response = api.post("/api/v1/subscribers/", body)
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == [field]
    assert not Subscriber.objects.exists()


def test_the_list_filters_by_status_topic_and_email_by_cursor(api: ApiClient, news: Any) -> None:
    other = TopicFactory.create(slug="other")
    jane = SubscriberFactory.create(email="jane@example.com")
    SubscriptionFactory.create(subscriber=jane, topic=news)
    bob = SubscriberFactory.create(email="bob@example.com", status="unsubscribed")
    SubscriptionFactory.create(subscriber=bob, topic=other)

    def emails(**query: str) -> list[str]:
        return [row["email"] for row in api.get("/api/v1/subscribers/", query).json()["results"]]

    assert emails() == ["bob@example.com", "jane@example.com"]
    assert emails(status="unsubscribed") == ["bob@example.com"]
    assert emails(topic="news") == ["jane@example.com"]
    assert emails(email="JANE@example.com") == ["jane@example.com"]
    first = api.get("/api/v1/subscribers/", {"page_size": "1"}).json()
    assert "cursor=" in first["next"]
    second = api.get(first["next"]).json()
    assert [row["email"] for row in second["results"]] == ["jane@example.com"]


def test_preferences_change_through_the_service_and_are_logged(api: ApiClient, news: Any) -> None:
    other = TopicFactory.create(slug="other")
    jane = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=jane, topic=news)
    response = api.patch(
        f"/api/v1/subscribers/{jane.pk}/",
        {"topics": ["other"], "frequency": "weekly", "email_format": "text"},
    )
    assert response.status_code == 200
    assert response.json()["topics"] == ["other"]
    subscription = Subscription.objects.get(subscriber=jane)
    assert subscription.topic == other and subscription.frequency == "weekly"
    assert Subscriber.objects.get().email_format == "text"
    assert ConsentEvent.objects.get().action == "preferences"
    bad = api.patch(f"/api/v1/subscribers/{jane.pk}/", {"frequency": "hourly"})
    assert bad.status_code == 400
    assert Subscription.objects.get(subscriber=jane).frequency == "weekly"


def test_a_subscriber_shows_the_frequency_and_pause_it_was_given(api: ApiClient, news: Any) -> None:
    jane = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=jane, topic=news)
    url = f"/api/v1/subscribers/{jane.pk}/"
    weekly = api.patch(url, {"frequency": "weekly"}).json()
    assert (weekly["frequency"], weekly["paused_until"]) == ("weekly", None)
    resume = (timezone.localdate() + timedelta(days=10)).isoformat()
    paused = api.patch(url, {"frequency": "paused", "paused_until": resume}).json()
    assert (paused["frequency"], paused["paused_until"]) == ("paused", resume)
    read = api.get(url).json()
    assert (read["frequency"], read["paused_until"]) == ("paused", resume)
    listed = api.get("/api/v1/subscribers/").json()["results"][0]
    assert (listed["frequency"], listed["paused_until"]) == ("paused", resume)
    subscription = Subscription.objects.get(subscriber=jane)
    # A dated pause keeps the frequency mail resumes with.
    assert subscription.frequency == "weekly"
    assert subscription.paused_until is not None
    assert subscription.paused_until.isoformat() == resume


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (0, "Choose a date after today"),
        (-3, "Choose a date after today"),
        (367, "A pause can last at most 366 days"),
        (36500, "A pause can last at most 366 days"),
    ],
)
def test_a_pause_has_the_preference_centers_bounds(
    api: ApiClient, news: Any, days: int, message: str
) -> None:
    jane = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=jane, topic=news, frequency="weekly")
    until = (timezone.localdate() + timedelta(days=days)).isoformat()

    answer = api.patch(
        f"/api/v1/subscribers/{jane.pk}/", {"frequency": "paused", "paused_until": until}
    )

    assert answer.status_code == 400
    [error] = answer.json()["errors"]
    assert error["field"] == "paused_until"
    assert error["message"].startswith(message)
    subscription = Subscription.objects.get(subscriber=jane)
    assert (subscription.frequency, subscription.paused_until) == ("weekly", None)
    last = (timezone.localdate() + timedelta(days=366)).isoformat()
    longest = api.patch(
        f"/api/v1/subscribers/{jane.pk}/", {"frequency": "paused", "paused_until": last}
    )
    assert longest.json()["paused_until"] == last


def test_unsubscribe_suppresses_and_erase_keeps_only_the_hash(api: ApiClient) -> None:
    jane = SubscriberFactory.create(email="jane@example.com")
    response = api.post(f"/api/v1/subscribers/{jane.pk}/unsubscribe/")
    assert response.status_code == 200 and response.json()["status"] == "unsubscribed"
    assert Suppression.objects.filter(email_hash=email_hash("jane@example.com")).exists()
    assert api.delete(f"/api/v1/subscribers/{jane.pk}/").status_code == 204
    assert not Subscriber.objects.exists()
    assert Suppression.objects.get().reason == "erased"
    assert api.get(f"/api/v1/subscribers/{jane.pk}/").status_code == 404


def test_the_public_sign_up_stays_open_without_a_key(
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = ApiClient().post(
            "/api/v1/subscribe", {"email": "open@example.com", "topics": ["news"]}
        )
    assert response.status_code == 202
    assert Subscriber.objects.get().status == "pending"


def test_the_tracking_opt_out_is_read_and_written_through_the_api(
    api: ApiClient, news: Any
) -> None:
    jane = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=jane, topic=news)
    url = f"/api/v1/subscribers/{jane.pk}/"
    assert api.get(url).json()["tracking_opt_out"] is False
    assert api.patch(url, {"tracking_opt_out": True}).json()["tracking_opt_out"] is True
    assert Subscriber.objects.get(pk=jane.pk).tracking_opt_out is True
    refused = api.patch(url, {"tracking_opt_out": "maybe"})
    assert refused.status_code == 400
    assert Subscriber.objects.get(pk=jane.pk).tracking_opt_out is True
