from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from channels.models import Delivery, SesFeedback
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


def test_a_delivery_shows_the_ses_feedback_it_received(paula: Client) -> None:
    delivery = DeliveryFactory.create(status="sent", provider_message_id="ses-1")
    feedback = SesFeedback.objects.create(
        sns_message_id="sns-1",
        topic_arn="arn:aws:sns:eu-west-1:123456789012:ses-feedback",
        type=SesFeedback.Type.BOUNCE,
        subtype="Permanent",
        provider_message_id="ses-1",
        delivery=delivery,
        suppressed=1,
    )

    page = paula.get(f"/admin/channels/delivery/{delivery.pk}/change/").content.decode()
    listing = paula.get("/admin/channels/sesfeedback/?type__exact=bounce")

    assert "SES feedback" in page
    assert "sns-1" in page
    assert "Permanent" in page
    assert listing.status_code == 200
    assert f"/admin/channels/sesfeedback/{feedback.pk}/change/" in listing.content.decode()
    assert paula.get("/admin/channels/sesfeedback/add/").status_code == 403
