"""Every endpoint, tried without a key (401), with an expired or revoked key (401), with a key
holding every scope but the one it needs (403, or 404 where existence must not leak), and with
that one scope alone (allowed)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from channels import webhook_events
from channels.models import Delivery
from publishing.api_keys import create_api_key, revoke_api_key
from publishing.models import ApiScope, Publication
from tests.api.conftest import ALL_SCOPES, ApiClient
from tests.factories import (
    ChannelFactory,
    DeliveryFactory,
    DispatchFactory,
    PublicationFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopicFactory,
)

pytestmark = pytest.mark.django_db
CHANNEL_SCOPES = ("channels:admin", "webhooks:admin")


@dataclass(frozen=True)
class Endpoint:
    method: str
    url: str
    scopes: tuple[str, ...]
    hidden: bool = False
    body: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.url}"


ENDPOINTS = [
    Endpoint("GET", "/api/v1/topics/", ("publications:read",)),
    Endpoint("GET", "/api/v1/topics/{topic}/", ("publications:read",)),
    Endpoint(
        "POST",
        "/api/v1/topics/",
        ("publications:write",),
        body={"name": "Security", "slug": "security"},
    ),
    Endpoint("PATCH", "/api/v1/topics/{topic}/", ("publications:write",), body={"name": "Renamed"}),
    Endpoint("POST", "/api/v1/topics/{topic}/archive/", ("publications:write",)),
    Endpoint("POST", "/api/v1/topics/{topic}/unarchive/", ("publications:write",)),
    Endpoint("GET", "/api/v1/publications/", ("publications:read",)),
    Endpoint(
        "POST",
        "/api/v1/publications/",
        ("publications:write",),
        body={"title": "T", "slug": "new", "body": "B", "topics": ["news"]},
    ),
    Endpoint("GET", "/api/v1/publications/{publication}/", ("publications:read",)),
    Endpoint(
        "PUT",
        "/api/v1/publications/{publication}/",
        ("publications:write",),
        body={"title": "T2", "slug": "p", "body": "B", "topics": ["news"]},
    ),
    Endpoint(
        "PATCH", "/api/v1/publications/{publication}/", ("publications:write",), body={"title": "x"}
    ),
    Endpoint("DELETE", "/api/v1/publications/{publication}/", ("publications:write",)),
    Endpoint("POST", "/api/v1/publications/{publication}/publish/", ("publications:publish",)),
    Endpoint(
        "POST",
        "/api/v1/publications/{publication}/schedule/",
        ("publications:publish",),
        body={"publish_at": "2099-01-01T09:00:00Z"},
    ),
    Endpoint("POST", "/api/v1/publications/{publication}/unschedule/", ("publications:publish",)),
    Endpoint("GET", "/api/v1/publications/{publication}/versions/", ("publications:read",)),
    Endpoint(
        "POST",
        "/api/v1/publications/{publication}/versions/1/restore/",
        ("publications:write",),
    ),
    Endpoint("GET", "/api/v1/publications/{publication}/stats/", ("publications:read",)),
    Endpoint("GET", "/api/v1/subscribers/", ("subscribers:read",)),
    Endpoint(
        "POST",
        "/api/v1/subscribers/",
        ("subscribers:write",),
        body={"email": "new@example.com", "topics": ["news"]},
    ),
    Endpoint("GET", "/api/v1/subscribers/{subscriber}/", ("subscribers:read",), hidden=True),
    Endpoint(
        "PATCH",
        "/api/v1/subscribers/{subscriber}/",
        ("subscribers:write",),
        hidden=True,
        body={"email_format": "text"},
    ),
    Endpoint(
        "POST", "/api/v1/subscribers/{subscriber}/unsubscribe/", ("subscribers:write",), hidden=True
    ),
    Endpoint("DELETE", "/api/v1/subscribers/{subscriber}/", ("subscribers:write",), hidden=True),
    Endpoint("GET", "/api/v1/channels/", CHANNEL_SCOPES),
    Endpoint(
        "POST",
        "/api/v1/channels/",
        CHANNEL_SCOPES,
        body={"name": "files", "kind": "email_file", "config": {"directory": "var/outbox-x"}},
    ),
    Endpoint("GET", "/api/v1/channels/{channel}/", CHANNEL_SCOPES),
    Endpoint("PATCH", "/api/v1/channels/{channel}/", CHANNEL_SCOPES, body={"batch_size": 5}),
    Endpoint("PUT", "/api/v1/channels/{channel}/", CHANNEL_SCOPES, body={"name": "x"}),
    Endpoint("DELETE", "/api/v1/channels/{channel}/", CHANNEL_SCOPES),
    Endpoint("POST", "/api/v1/channels/{channel}/test/", CHANNEL_SCOPES, body={}),
    Endpoint("GET", "/api/v1/dispatches/", ("deliveries:read",)),
    Endpoint("GET", "/api/v1/dispatches/{dispatch}/", ("deliveries:read",)),
    Endpoint("GET", "/api/v1/deliveries/", ("deliveries:read",)),
    Endpoint("GET", "/api/v1/deliveries/{delivery}/", ("deliveries:read",)),
    Endpoint("POST", "/api/v1/deliveries/{delivery}/retry/", ("deliveries:write",)),
    Endpoint("GET", "/api/v1/webhook-endpoints/", ("webhooks:admin",)),
    Endpoint(
        "POST",
        "/api/v1/webhook-endpoints/",
        ("webhooks:admin",),
        body={"url": "https://hooks.example.com/new", "event_types": ["subscriber.created"]},
    ),
    Endpoint("GET", "/api/v1/webhook-endpoints/{endpoint}/", ("webhooks:admin",)),
    Endpoint(
        "PATCH",
        "/api/v1/webhook-endpoints/{endpoint}/",
        ("webhooks:admin",),
        body={"description": "x"},
    ),
    Endpoint("DELETE", "/api/v1/webhook-endpoints/{endpoint}/", ("webhooks:admin",)),
    Endpoint("POST", "/api/v1/webhook-endpoints/{endpoint}/rotate-secret/", ("webhooks:admin",)),
    Endpoint(
        "POST",
        "/api/v1/webhook-endpoints/{endpoint}/replay/",
        ("webhooks:admin",),
        body={"since": "2020-01-01T00:00:00Z"},
    ),
    Endpoint("GET", "/api/v1/webhook-endpoints/{endpoint}/attempts/", ("webhooks:admin",)),
]


@pytest.fixture
def ids(db: Any) -> dict[str, int]:
    topic = TopicFactory.create(slug="news")
    publication = PublicationFactory.create(slug="p", topics=[topic])
    subscriber = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=subscriber, topic=topic)
    channel = ChannelFactory.create(kind="email_file", config={"directory": "var/outbox-x"})
    dispatch = DispatchFactory.create(publication=PublicationFactory.create(slug="sent"))
    delivery = DeliveryFactory.create(
        dispatch=dispatch, channel=channel, status=Delivery.Status.DEAD
    )
    endpoint, _secret = webhook_events.create_endpoint(
        webhook_events.EndpointInput(
            url="https://hooks.example.com/in", event_types=["subscriber.created"]
        )
    )
    return {
        "endpoint": endpoint.pk,
        "topic": topic.pk,
        "publication": publication.pk,
        "subscriber": subscriber.pk,
        "channel": channel.pk,
        "dispatch": dispatch.pk,
        "delivery": delivery.pk,
    }


def call(client: ApiClient, endpoint: Endpoint, ids: dict[str, int]) -> Any:
    return client.request(endpoint.method, endpoint.url.format(**ids), endpoint.body)


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_no_key_gets_401(endpoint: Endpoint, ids: dict[str, int]) -> None:
    response = call(ApiClient(), endpoint, ids)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_an_expired_or_revoked_key_gets_401(endpoint: Endpoint, ids: dict[str, int]) -> None:
    expired = create_api_key(
        name="expired", scopes=ALL_SCOPES, expires_at=timezone.now() + timedelta(seconds=1)
    )
    expired.api_key.expires_at = timezone.now() - timedelta(seconds=1)
    expired.api_key.save(update_fields=["expires_at"])
    revoked = create_api_key(name="revoked", scopes=ALL_SCOPES)
    revoke_api_key(revoked.api_key)
    assert call(ApiClient(expired.key), endpoint, ids).status_code == 401
    assert call(ApiClient(revoked.key), endpoint, ids).status_code == 401
    assert Publication.objects.filter(pk=ids["publication"]).exists()


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_a_key_without_the_scope_gets_403_or_404_and_changes_nothing(
    endpoint: Endpoint, ids: dict[str, int]
) -> None:
    others = [scope for scope in ALL_SCOPES if scope not in endpoint.scopes]
    key = create_api_key(name="narrow", scopes=others).key
    before = Publication.objects.count(), Delivery.objects.filter(status="dead").count()
    response = call(ApiClient(key), endpoint, ids)
    assert response.status_code == (404 if endpoint.hidden else 403)
    assert response["Content-Type"] == "application/problem+json"
    if not endpoint.hidden:
        assert " or ".join(endpoint.scopes) in response.json()["detail"]
    after = Publication.objects.count(), Delivery.objects.filter(status="dead").count()
    assert after == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=str)
def test_the_scope_alone_is_enough(
    endpoint: Endpoint, ids: dict[str, int], django_capture_on_commit_callbacks: Any
) -> None:
    key = create_api_key(name="just enough", scopes=[endpoint.scopes[0]]).key
    with django_capture_on_commit_callbacks(execute=False):
        response = call(ApiClient(key), endpoint, ids)
    assert response.status_code not in (401, 403, 404), response.content


def test_scopes_are_the_issues_list() -> None:
    assert sorted(ApiScope.values) == sorted(
        [
            "publications:read",
            "publications:write",
            "publications:publish",
            "subscribers:read",
            "subscribers:write",
            "channels:admin",
            "deliveries:read",
            "deliveries:write",
            "webhooks:admin",
        ]
    )


def test_the_scope_that_restores_a_version_is_the_one_whose_description_says_so(
    ids: dict[str, int],
) -> None:
    labels = dict(ApiScope.choices)
    assert "restore" in labels["publications:write"]
    assert "restore" not in labels["publications:publish"]
    writer = ApiClient(create_api_key(name="writer", scopes=["publications:write"]).key)
    draft = {"title": "First", "slug": "restorable", "body": "B", "topics": ["news"]}
    pk = writer.post("/api/v1/publications/", draft).json()["id"]
    assert writer.patch(f"/api/v1/publications/{pk}/", {"title": "Second"}).status_code == 200
    url = f"/api/v1/publications/{pk}/versions/1/restore/"
    publisher = create_api_key(name="publisher", scopes=["publications:publish"]).key
    assert ApiClient(publisher).post(url).status_code == 403
    assert Publication.objects.get(pk=pk).title == "Second"
    restored = writer.post(url)
    assert restored.status_code == 200
    assert restored.json()["title"] == "First"
    assert Publication.objects.get(pk=pk).title == "First"
