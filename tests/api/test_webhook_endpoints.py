"""The event webhook endpoints API (decision 0084): CRUD with the webhooks:admin scope, the
secret shown once and rotated, replay, attempts; bad input named field by field."""

from __future__ import annotations

from typing import Any

import pytest

from channels.configuration import channel_secrets
from channels.models import Channel, Delivery, WebhookEndpoint
from events.models import Event
from tests.api.conftest import ApiClient, KeyMaker

pytestmark = pytest.mark.django_db
URL = "/api/v1/webhook-endpoints/"


def endpoint_body(**extra: Any) -> dict[str, Any]:
    return {
        "url": "https://hooks.example.com/publishing",
        "event_types": ["subscriber.created", "delivery.bounced"],
        "description": "CRM sync",
        **extra,
    }


def test_an_integrator_creates_reads_changes_and_deletes_an_endpoint(make_key: KeyMaker) -> None:
    client = ApiClient(make_key("webhooks:admin"))

    created = client.post(URL, endpoint_body())

    assert created.status_code == 201, created.content
    secret = created.json()["secret"]
    assert secret.startswith("whsec_")
    body = created.json()["endpoint"]
    assert body["url"] == "https://hooks.example.com/publishing"
    assert body["event_types"] == ["delivery.bounced", "subscriber.created"]
    assert body["is_enabled"] is True
    assert secret not in str(body) and body["secret"].startswith("whsec_••••")
    endpoint = WebhookEndpoint.objects.get()
    assert channel_secrets(endpoint.channel) == {"secret": secret}
    detail = f"{URL}{endpoint.pk}/"
    assert secret not in client.get(detail).content.decode()
    assert [row["id"] for row in client.get(URL).json()["results"]] == [endpoint.pk]

    changed = client.patch(detail, {"event_types": ["subscriber.erased"], "is_enabled": False})
    assert changed.status_code == 200, changed.content
    assert changed.json()["event_types"] == ["subscriber.erased"]
    assert changed.json()["is_enabled"] is False

    rotated = client.post(f"{detail}rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != secret and rotated.json()["previous_secret_until"]
    endpoint.refresh_from_db()
    assert channel_secrets(endpoint.channel) == {
        "secret": rotated.json()["secret"],
        "previous_secret": secret,
    }
    assert client.get(f"{detail}attempts/").json() == []

    assert client.delete(detail).status_code == 204
    assert not WebhookEndpoint.objects.exists() and not Channel.objects.exists()


def test_endpoints_stay_out_of_the_channels_api(api: ApiClient) -> None:
    assert api.post(URL, endpoint_body()).status_code == 201
    assert api.get("/api/v1/channels/").json()["results"] == []
    response = api.post(
        "/api/v1/channels/",
        {"name": "x", "kind": "event_webhook", "config": {"url": "https://a.example.com"}},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "kind"


def test_a_wrong_key_gets_401_and_a_key_without_the_scope_403(make_key: KeyMaker) -> None:
    wrong = ApiClient("pk_nothere_wrongwrongwrongwrong")
    assert wrong.post(URL, endpoint_body()).status_code == 401
    narrow = ApiClient(make_key("channels:admin", "subscribers:write"))
    response = narrow.post(URL, endpoint_body())
    assert response.status_code == 403
    assert "webhooks:admin" in response.json()["detail"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (endpoint_body(event_types=["subscriber.nope"]), "event_types", "not a valid choice"),
        (endpoint_body(event_types=[]), "event_types", "at least 1"),
        (endpoint_body(url="http://10.0.0.1/in"), "url", "private address"),
        (endpoint_body(url="http://169.254.169.254/"), "url", "metadata"),
        (endpoint_body(url="ftp://example.com/x"), "url", "http and https"),
        (endpoint_body(secret="whsec_c2hvcnQ="), "secret", "24 to 64 bytes"),
        (endpoint_body(secret="whsec_!!"), "secret", "must be base64"),
        (endpoint_body(description="x" * 201), "description", "200 characters"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_the_limit(
    api: ApiClient, settings: Any, body: dict[str, Any], field: str, words: str
) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    response = api.post(URL, body)
    assert response.status_code == 400, response.content
    [error] = [e for e in response.json()["errors"] if e["field"].startswith(field)]
    assert words in error["message"]
    assert not WebhookEndpoint.objects.exists() and not Channel.objects.exists()


def test_replay_through_the_api(api: ApiClient) -> None:
    endpoint_id = api.post(URL, endpoint_body(event_types=["subscriber.created"])).json()[
        "endpoint"
    ]["id"]
    event = Event.objects.create(
        type="subscriber.created", occurred_at="2025-01-01T00:00:00Z", data={"subscriber_id": 1}
    )
    replay = f"{URL}{endpoint_id}/replay/"

    assert api.post(replay, {"event_id": f"evt_{event.pk}"}).json() == {"replayed": 1}
    delivery = Delivery.objects.get(event=event)
    assert delivery.status == Delivery.Status.QUEUED
    Delivery.objects.filter(pk=delivery.pk).update(status=Delivery.Status.DEAD)
    assert api.post(replay, {"since": "2024-12-31T00:00:00Z"}).json() == {"replayed": 1}
    missing = api.post(replay, {"event_id": "evt_424242"})
    assert missing.status_code == 404
    both = api.post(replay, {})
    assert both.status_code == 400 and both.json()["errors"][0]["field"] == "event_id"
