from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from channels.models import Delivery
from publishing.models import Dispatch
from tests.factories import DeliveryFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def paula(client: Client) -> Client:
    user = get_user_model().objects.create_superuser("paula", "paula@example.com", "pw")
    client.force_login(user)
    return client


def test_the_ledger_lists_deliveries_with_their_state(paula: Client) -> None:
    delivery = DeliveryFactory(status="dead", attempts=8, last_error="SMTP 451: later")

    response = paula.get("/admin/channels/delivery/?status__exact=dead")

    assert response.status_code == 200
    assert f">{delivery.pk}<" in response.content.decode()
    assert "SMTP 451: later" in response.content.decode()
    assert paula.get("/admin/channels/delivery/add/").status_code == 403


def test_a_publisher_requeues_failed_and_dead_deliveries(
    paula: Client, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)  # the batch waits in the queue
    dead = DeliveryFactory(status="dead", attempts=8, last_error="x")
    Dispatch.objects.filter(pk=dead.dispatch_id).update(status="done", finished_at=timezone.now())
    sent = DeliveryFactory(status="sent", dispatch=dead.dispatch, channel=dead.channel)

    with django_capture_on_commit_callbacks(execute=True):
        response = paula.post(
            "/admin/channels/delivery/",
            {"action": "requeue", "_selected_action": [dead.pk, sent.pk]},
            follow=True,
        )

    assert "1 deliveries re-queued." in response.content.decode()
    assert list(Delivery.objects.order_by("pk").values_list("status", "attempts")) == [
        ("queued", 0),
        ("sent", 0),
    ]
    assert Dispatch.objects.get(pk=dead.dispatch_id).status == "sending"
