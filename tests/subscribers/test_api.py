from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from publishing.models import Topic
from subscribers.api import ACCEPTED
from subscribers.models import ConsentEvent, Subscriber
from tests.factories import SubscriberFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/subscribe"


def test_it_starts_a_double_opt_in_through_the_api(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            URL,
            {
                "email": "api@example.com",
                "topics": ["news"],
                "locale": "fr",
                "timezone": "Europe/Paris",
                "form_version": "partner-form-3",
            },
            content_type="application/json",
        )

    assert response.status_code == 202
    assert response.json() == {"detail": ACCEPTED}
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert (subscriber.locale, subscriber.timezone, subscriber.source) == (
        "fr",
        "Europe/Paris",
        "api",
    )
    event = ConsentEvent.objects.get()
    assert event.form_version == "partner-form-3"
    assert event.detail["via"] == "api"
    assert "/confirm/" in str(mail.outbox[0].body)


def test_it_answers_an_active_address_exactly_like_a_new_one(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    SubscriberFactory.create(email="known@example.com")
    body = {"topics": ["news"]}
    with django_capture_on_commit_callbacks(execute=True):
        known = client.post(URL, {**body, "email": "known@example.com"}, "application/json")
        new = client.post(URL, {**body, "email": "unknown@example.com"}, "application/json")

    assert known.status_code == new.status_code == 202
    assert known.content == new.content
    assert "already subscribed" in mail.outbox[0].subject


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"email": "nope"}, "email", "valid email"),
        ({"email": "a" * 250 + "@x.io"}, "email", "254"),
        ({"email": "a@example.com", "name": "n" * 201}, "name", "200"),
        ({"email": "a@example.com", "topics": ["missing"]}, "topics", "missing"),
        ({"email": "a@example.com", "topics": []}, "topics", "at least one"),
        ({"email": "a@example.com", "topics": ["news"] * 51}, "topics", "50"),
        ({"email": "a@example.com", "timezone": "Mars/Base"}, "timezone", "IANA"),
        ({"email": "a@example.com", "locale": "xx"}, "locale", "valid choice"),
        ({"email": "a@example.com", "form_version": "v" * 51}, "form_version", "50"),
    ],
)
def test_it_names_the_field_and_the_limit_of_bad_input(
    client: Client, news: Topic, body: dict[str, object], field: str, message: str
) -> None:
    payload = {"topics": ["news"], **body}

    response = client.post(URL, payload, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    errors = [error for error in response.json()["errors"] if error["field"] == field]
    assert errors, response.json()
    assert message in errors[0]["message"]
    assert not Subscriber.objects.exists()


@override_settings(SUBSCRIBERS_SIGNUP_RATE_IP="2/h")
def test_it_shares_the_per_ip_limit_with_the_page_and_answers_429_as_a_problem_document(
    client: Client, news: Topic
) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client.post("/subscribe/", {"email": "one@example.com", "topics": [news.pk]})
        client.post(URL, {"email": "two@example.com", "topics": ["news"]}, "application/json")

        response = client.post(
            URL, {"email": "three@example.com", "topics": ["news"]}, "application/json"
        )

    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 429
    assert problem["code"] == "throttled"
    assert "Too many sign-ups" in problem["detail"]
    assert problem["instance"] == URL
    assert Subscriber.objects.count() == 2
    # Retry-After is when the hourly window ends: the same request is accepted then.
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 3600
    with time_machine.travel(start + timedelta(seconds=retry_after), tick=False):
        again = client.post(
            URL, {"email": "three@example.com", "topics": ["news"]}, "application/json"
        )
    assert again.status_code == 202


def test_it_needs_no_credentials_and_no_csrf_token(news: Topic) -> None:
    client = Client(enforce_csrf_checks=True)

    response = client.post(URL, {"email": "x@example.com", "topics": ["news"]}, "application/json")

    assert response.status_code == 202
