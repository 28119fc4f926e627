"""The subscriber pages as a person reads them: nothing ticked for them, errors that name the
field, dates in their time zone and language, values in words; and the site's emails in the
publications' design with a plain-text part."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core import mail
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from publishing.models import Topic
from subscribers import services, tokens
from subscribers.consent import Origin
from subscribers.models import Subscriber
from tests.factories import SubscriptionFactory

pytestmark = pytest.mark.django_db

#: What the page must never show: an ISO timestamp (2026-03-14T15:09:26.535897+00:00).
ISO_STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?")
SIGNED_UP = datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)


def preferences_page(subscriber: Subscriber) -> str:
    return f"/preferences/{tokens.manage_token(subscriber.pk, subscriber.token_key)}/"


def visible_text(html: str) -> str:
    """The page's text without tags and attributes (a date input's ISO value is not shown)."""
    return re.sub(r"<[^>]+>", " ", html)


def signed_up(topics: list[Topic], *, locale: str, time_zone: str) -> Subscriber:
    """A subscriber who signed up and confirmed through the services at SIGNED_UP."""
    with time_machine.travel(SIGNED_UP, tick=False):
        services.sign_up(
            email="ines@example.com",
            name="Inès",
            topics=topics,
            locale=locale,
            time_zone=time_zone,
            origin=Origin(via="page", form_version="signup-2026-11", ip_address="192.0.2.0"),
        )
        subscriber = Subscriber.objects.get()
        services.confirm_subscription(
            tokens.confirmation_token(subscriber.pk, subscriber.token_key),
            Origin(via="page", form_version="confirm"),
        )
    subscriber.refresh_from_db()
    return subscriber


def test_no_topic_is_ticked_on_the_sign_up_page(client: Client, news: Topic, events: Topic) -> None:
    body = client.get("/subscribe/").content.decode()

    topic_inputs = re.findall(r'<input type="checkbox" name="topics"[^>]*>', body)
    assert len(topic_inputs) == 2
    assert not [field for field in topic_inputs if "checked" in field]


def test_sending_no_topic_names_the_field_in_the_error(client: Client, news: Topic) -> None:
    response = client.post("/subscribe/", {"email": "someone@example.com", "name": ""})

    assert response.status_code == 400
    body = response.content.decode()
    assert 'class="error-summary" role="alert"' in body
    assert '<a href="#id_topics">Topics: Choose at least one topic.</a>' in body
    assert not Subscriber.objects.exists()


def test_the_preference_center_shows_words_and_local_times(
    client: Client, news: Topic, events: Topic
) -> None:
    subscriber = signed_up([news], locale="en", time_zone="America/New_York")

    body = client.get(preferences_page(subscriber)).content.decode()
    text = visible_text(body)

    assert not ISO_STAMP.search(text), ISO_STAMP.search(text)
    # 15:09 UTC is 11:09 in New York on that day (daylight saving time).
    assert "March 14, 2026, 11:09 a.m." in text
    assert "Times are shown in your time zone, America/New_York." in text
    for words in ("Active", "English", "News (Immediately)", "HTML with a plain-text alternative"):
        assert f"{words}" in text, words
    assert "from the sign-up form" in text
    assert "Signed up on this website" in text and "Confirmed on this website" in text
    for code in (">active<", ">en<", "immediate)", ">html<", "from page"):
        assert code not in body, code


def test_the_preference_center_speaks_the_subscribers_language(client: Client, news: Topic) -> None:
    subscriber = signed_up([news], locale="fr", time_zone="Europe/Paris")
    SubscriptionFactory.create(subscriber=subscriber, topic=Topic.objects.create(name="Agenda"))
    subscriber.subscriptions.filter(topic__name="Agenda").update(frequency="weekly")

    text = visible_text(client.get(preferences_page(subscriber)).content.decode())

    # 15:09 UTC is 16:09 in Paris in March (winter time), written the French way.
    assert "14 mars 2026 16:09" in text
    assert "Actif" in text
    assert "Français" in text
    assert "Agenda (Résumé hebdomadaire)" in text
    assert "News (Immédiatement)" in text
    assert not ISO_STAMP.search(text)


def test_the_confirmation_email_has_the_publications_design_and_a_text_part(
    client: Client, news: Topic, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/subscribe/", {"email": "new@example.com", "topics": [news.pk]})

    [message] = mail.outbox
    assert isinstance(message, mail.EmailMultiAlternatives)
    html = str(message.alternatives[0][0])
    text = str(message.body)
    # The publications' frame (templates/emails/_styles.html), its CSS inlined: no <style>.
    assert "<style" not in html
    assert re.search(r'class="wrapper" style="[^"]*background: #f4f4f5', html)
    assert re.search(r'class="content" style="[^"]*max-width: 600px', html)
    assert re.search(r'class="button" href="[^"]+/confirm/[^"]+" style="[^"]*#1d4ed8', html)
    # The plain-text part says the same, link included, and greets without a gap.
    assert text.startswith("Hello,\n")
    assert re.search(r"https?://\S+/confirm/\S+/", text)
    assert "Hello ," not in text + html
