"""Where events come from (decision 0084): publishing, subscribers (sign-up, confirmation,
import) and SES feedback each record theirs in the transaction of the change, with ids and
facts only."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from django.test import Client
from pytest_httpserver import HTTPServer

from events.models import Event, EventType
from publishing import services as publishing_services
from publishing.models import Publication
from subscribers import services, tokens
from subscribers.models import Subscriber
from tests.channels.event_support import make_endpoint
from tests.channels.sns_peer import SnsPeer, bounce, complaint
from tests.channels.test_ses_feedback import post, sent_delivery
from tests.factories import PublicationFactory, TopicFactory

pytestmark = pytest.mark.django_db
ORIGIN = services.Origin(via="test")


def events_of(event_type: str) -> list[Event]:
    return list(Event.objects.filter(type=event_type).order_by("pk"))


def test_publishing_and_editing_record_their_events(httpserver: HTTPServer) -> None:
    make_endpoint(httpserver, [EventType.PUBLICATION_PUBLISHED, EventType.PUBLICATION_UPDATED])
    topic = TopicFactory.create(slug="news")
    publication = PublicationFactory.create(slug="launch", topics=[topic])

    dispatch = publishing_services.publish(publication, by=None)
    data = publishing_services.PublicationInput(
        title="Launch, corrected", slug="launch", summary="", body="B", topics=[topic]
    )
    publishing_services.update_publication(publication, data, by=None)

    [published] = events_of(EventType.PUBLICATION_PUBLISHED)
    assert published.data == {
        "publication_id": publication.pk,
        "slug": "launch",
        "version": dispatch.version_number,
        "dispatch_id": dispatch.pk,
        "topics": ["news"],
    }
    [updated] = events_of(EventType.PUBLICATION_UPDATED)
    assert updated.data["version"] == dispatch.version_number + 1
    assert updated.data["status"] == Publication.Status.PUBLISHED


def test_sign_up_confirmation_and_import_record_subscriber_events(httpserver: HTTPServer) -> None:
    make_endpoint(httpserver, [EventType.SUBSCRIBER_CREATED, EventType.SUBSCRIBER_CONFIRMED])
    topic = TopicFactory.create(slug="news")

    outcome = services.sign_up(email="new@example.com", topics=[topic], origin=ORIGIN)
    subscriber = Subscriber.objects.get(pk=outcome.subscriber_id)
    token = tokens.confirmation_token(subscriber.pk, subscriber.token_key)
    services.confirm_subscription(token, ORIGIN)
    services.confirm_subscription(token, ORIGIN)  # twice: one event
    services.sign_up(email="new@example.com", topics=[topic], origin=ORIGIN)  # not created
    report = services.import_subscribers(
        io.BytesIO(b"email,name\nann@example.com,Ann\nben@example.com,Ben\n"),
        services.ImportOptions(topics=["news"], workers=1),
    )

    created = events_of(EventType.SUBSCRIBER_CREATED)
    assert report.created == 2
    assert [e.data["source"] for e in created] == ["test", "import", "import"]
    assert created[0].data == {
        "subscriber_id": subscriber.pk,
        "status": "pending",
        "source": "test",
        "topics": ["news"],
    }
    [confirmed] = events_of(EventType.SUBSCRIBER_CONFIRMED)
    assert confirmed.data["status"] == "active"
    everything = json.dumps([e.data for e in Event.objects.all()])
    assert "example.com" not in everything and "Ann" not in everything


def test_ses_bounces_and_complaints_become_delivery_events(
    client: Client, sns: SnsPeer, httpserver: HTTPServer
) -> None:
    make_endpoint(httpserver, [EventType.DELIVERY_BOUNCED, EventType.DELIVERY_COMPLAINED])
    bounced = sent_delivery("bob@example.com", "ses-1")
    complained = sent_delivery("carol@example.com", "ses-2")

    for event in (
        bounce("event", ["bob@example.com"], messageId="ses-1"),
        complaint("event", ["carol@example.com"], messageId="ses-2"),
    ):
        assert post(client, sns.notification(event)).status_code == 200

    [bounce_event] = events_of(EventType.DELIVERY_BOUNCED)
    assert bounce_event.data["delivery_id"] == bounced.pk
    assert bounce_event.data["subscriber_id"] == bounced.subscriber_id
    assert (bounce_event.data["type"], bounce_event.data["permanent"]) == ("Permanent", True)
    [complaint_event] = events_of(EventType.DELIVERY_COMPLAINED)
    assert complaint_event.data["delivery_id"] == complained.pk
    everything: Any = json.dumps([e.data for e in Event.objects.all()])
    assert "example.com" not in everything
