"""The channels API: secrets write-only, per-field errors, webhook-only keys, test messages to a
real local peer; dispatches and deliveries with filters and retries."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from channels.configuration import channel_secrets
from channels.models import Channel, Delivery
from publishing.models import Dispatch
from tests.api.conftest import ApiClient, KeyMaker
from tests.factories import ChannelFactory, DeliveryFactory, DispatchFactory, TopicFactory

pytestmark = pytest.mark.django_db
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def webhook(url: str = "https://hooks.example.com/in", **extra: Any) -> dict[str, Any]:
    return {
        "name": "CRM",
        "kind": "webhook",
        "config": {"url": url},
        "secrets": {"secret": SECRET},
        **extra,
    }


def test_secrets_are_write_only_masked_on_read_and_kept_when_left_empty(api: ApiClient) -> None:
    TopicFactory.create(slug="news")
    created = api.post("/api/v1/channels/", webhook(topics=["news"]))
    assert created.status_code == 201
    body = created.json()
    assert SECRET not in created.content.decode()
    assert body["secrets"] == {"secret": "whsec_••••LaSw"}
    assert body["topics"] == ["news"]
    channel = Channel.objects.get()
    assert channel_secrets(channel) == {"secret": SECRET}
    assert SECRET not in channel.secrets_encrypted
    url = f"/api/v1/channels/{channel.pk}/"
    assert SECRET not in api.get(url).content.decode()
    changed = api.patch(url, {"config": {"timeout": 3}, "secrets": {"secret": ""}})
    assert changed.status_code == 200
    channel.refresh_from_db()
    assert channel_secrets(channel) == {"secret": SECRET}
    assert channel.config["timeout"] == 3


def test_bad_settings_are_named_field_by_field_and_nothing_is_stored(api: ApiClient) -> None:
    response = api.post(
        "/api/v1/channels/",
        {**webhook(url="not a url"), "secrets": {"secret": "nope"}, "batch_size": 0},
    )
    assert response.status_code == 400
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"batch_size"}
    response = api.post("/api/v1/channels/", {**webhook(url="not a url"), "secrets": {}})
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"url", "secret"}
    assert not Channel.objects.exists()


def test_the_kind_of_a_channel_cannot_change(api: ApiClient) -> None:
    channel = ChannelFactory.create(kind="email_file", config={"directory": "var/outbox-x"})
    response = api.patch(f"/api/v1/channels/{channel.pk}/", {"kind": "webhook"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "kind"


def test_a_webhooks_key_reaches_webhooks_only(make_key: KeyMaker) -> None:
    client = ApiClient(make_key("webhooks:admin"))
    email = ChannelFactory.create(kind="email_file", config={"directory": "var/outbox-x"})
    created = client.post("/api/v1/channels/", webhook())
    assert created.status_code == 201
    listed = [row["kind"] for row in client.get("/api/v1/channels/").json()["results"]]
    assert listed == ["webhook"]
    assert client.get(f"/api/v1/channels/{email.pk}/").status_code == 404
    assert client.delete(f"/api/v1/channels/{email.pk}/").status_code == 404
    refused = client.post(
        "/api/v1/channels/", {"name": "f", "kind": "email_file", "config": {"directory": "/x"}}
    )
    assert refused.status_code == 403
    assert Channel.objects.count() == 2


def test_a_channel_with_deliveries_is_not_deleted(api: ApiClient) -> None:
    delivery = DeliveryFactory.create()
    response = api.delete(f"/api/v1/channels/{delivery.channel_id}/")
    assert response.status_code == 409
    assert Delivery.objects.filter(pk=delivery.pk).exists()
    unused = ChannelFactory.create()
    assert api.delete(f"/api/v1/channels/{unused.pk}/").status_code == 204
    assert not Channel.objects.filter(pk=unused.pk).exists()


def test_a_test_message_reaches_the_endpoint_and_writes_no_ledger_row(
    api: ApiClient, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    channel_id = api.post("/api/v1/channels/", webhook(url=httpserver.url_for("/hook"))).json()[
        "id"
    ]
    response = api.post(f"/api/v1/channels/{channel_id}/test/", {})
    assert response.status_code == 200
    assert response.json()["status"] == "sent"
    request, _ = httpserver.log[0]
    assert "webhook-signature" in request.headers
    assert json.loads(request.data)
    assert not Delivery.objects.exists()


def test_an_email_channel_test_needs_an_address(api: ApiClient) -> None:
    channel = ChannelFactory.create(kind="email_file", config={"directory": "var/outbox-x"})
    response = api.post(f"/api/v1/channels/{channel.pk}/test/", {})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "to"


def test_deliveries_filter_by_status_and_channel(api: ApiClient) -> None:
    a, b = ChannelFactory.create(), ChannelFactory.create()
    dead = DeliveryFactory.create(channel=a, status="dead")
    DeliveryFactory.create(channel=a, status="sent")
    DeliveryFactory.create(channel=b, status="dead")

    def ids(**query: Any) -> list[int]:
        return [row["id"] for row in api.get("/api/v1/deliveries/", query).json()["results"]]

    assert ids(status="dead", channel=a.pk) == [dead.pk]
    assert len(ids(status="dead")) == 2
    assert len(ids(channel=b.pk)) == 1
    assert api.get("/api/v1/deliveries/", {"status": "lost"}).status_code == 400


def test_retry_requeues_a_dead_delivery_and_refuses_a_sent_one(api: ApiClient) -> None:
    dispatch = DispatchFactory.create(status=Dispatch.Status.DONE)
    dead = DeliveryFactory.create(dispatch=dispatch, status="dead", attempts=8, last_error="x")
    sent = DeliveryFactory.create(dispatch=dispatch, status="sent")
    response = api.post(f"/api/v1/deliveries/{dead.pk}/retry/")
    assert response.status_code == 200
    assert response.json()["delivery"]["status"] == "queued"
    dead.refresh_from_db()
    assert dead.status == "queued" and dead.attempts == 0
    assert Dispatch.objects.get().status == Dispatch.Status.SENDING
    refused = api.post(f"/api/v1/deliveries/{sent.pk}/retry/")
    assert refused.status_code == 409
    assert Delivery.objects.get(pk=sent.pk).status == "sent"


def test_dispatches_list_and_read(api: ApiClient) -> None:
    dispatch = DispatchFactory.create()
    listed = api.get("/api/v1/dispatches/", {"publication": dispatch.publication_id}).json()
    assert [row["id"] for row in listed["results"]] == [dispatch.pk]
    assert api.get(f"/api/v1/dispatches/{dispatch.pk}/").json()["kind"] == "publish"


def default_email_id() -> int | None:
    channel = Channel.objects.default_email()
    return channel.pk if channel else None


def test_marking_an_email_channel_default_moves_the_mark_from_the_previous_one(
    api: ApiClient, tmp_path: Any
) -> None:
    first = api.post(
        "/api/v1/channels/",
        {"name": "outbox", "kind": "email_file", "config": {"directory": str(tmp_path / "a")}},
    ).json()
    assert first["is_default_email"] is False
    assert default_email_id() == first["id"]  # the first created
    second = api.post(
        "/api/v1/channels/",
        {
            "name": "outbox 2",
            "kind": "email_file",
            "is_default_email": True,
            "config": {"directory": str(tmp_path / "b")},
        },
    )
    assert second.status_code == 201 and second.json()["is_default_email"] is True
    assert default_email_id() == second.json()["id"]
    moved = api.patch(f"/api/v1/channels/{first['id']}/", {"is_default_email": True})
    assert moved.status_code == 200 and moved.json()["is_default_email"] is True
    assert list(Channel.objects.filter(is_default_email=True).values_list("pk", flat=True)) == [
        first["id"]
    ]
    assert api.get(f"/api/v1/channels/{second.json()['id']}/").json()["is_default_email"] is False
    assert default_email_id() == first["id"]


def test_only_an_email_channel_can_be_the_default_email_channel(api: ApiClient) -> None:
    response = api.post("/api/v1/channels/", {**webhook(), "is_default_email": True})
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["is_default_email"]
    assert not Channel.objects.exists()


def test_tracking_is_off_by_default_and_switched_through_the_api(api: ApiClient) -> None:
    created = api.post("/api/v1/channels/", webhook())
    assert created.json()["tracking"] is False
    url = f"/api/v1/channels/{created.json()['id']}/"
    switched = api.patch(url, {"tracking": True})
    assert switched.status_code == 200
    assert switched.json()["tracking"] is True
    assert Channel.objects.get().tracking is True
    refused = api.patch(url, {"tracking": "sometimes"})
    assert refused.status_code == 400
    assert [error["field"] for error in refused.json()["errors"]] == ["tracking"]
    assert Channel.objects.get().tracking is True
