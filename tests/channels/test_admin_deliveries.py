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


def _member(username: str, role: str) -> Client:
    from django.contrib.auth.models import Group

    from publishing.roles import assign_role_permissions
    from tests.factories import UserFactory

    assign_role_permissions()
    user = UserFactory.create(username=username)
    user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(get_user_model().objects.get(pk=user.pk))
    return client


def _ledger(batch: int = 0) -> list[Delivery]:
    """Deliveries of every kind, each with its own dispatch, channel and subscriber."""
    from tests.factories import ChannelFactory, SubscriberFactory

    rows = []
    for i in range(6):
        reader = SubscriberFactory.create(
            email=f"reader{i}.{batch}@example.org", name=f"Reader {i}"
        )
        rows.append(DeliveryFactory.create(subscriber=reader, status="sent"))
    rows.append(
        DeliveryFactory.create(
            kind="broadcast", channel=ChannelFactory.create(name=f"Team Slack {batch}")
        )
    )
    rows.append(DeliveryFactory.create(kind="transactional", recipient="ed@example.org"))
    leaving = SubscriberFactory.create(name="", email=f"gone.{batch}@example.org")
    erased = DeliveryFactory.create(subscriber=leaving)
    leaving.delete()
    rows.append(erased)
    return rows


def test_a_publisher_sees_each_recipients_address_without_a_query_per_row(
    django_assert_max_num_queries: Any,
) -> None:
    from publishing.roles import PUBLISHER

    _ledger()
    publisher = _member("paula", PUBLISHER)
    publisher.get("/admin/channels/delivery/")  # warm the session and permission caches

    with django_assert_max_num_queries(12):
        response = publisher.get("/admin/channels/delivery/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "Recipient" in page
    for i in range(6):
        assert f"Reader {i} &lt;reader{i}.0@example.org&gt;" in page
    assert "Team Slack 0 (channel)" in page
    assert "ed@example.org" in page
    assert "(subscriber erased)" in page
    assert "First publication of “Publication" in page  # the dispatch by title, joined


def test_the_list_costs_the_same_queries_for_9_or_18_deliveries() -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from publishing.roles import PUBLISHER

    publisher = _member("paula", PUBLISHER)
    counts = []
    for batch in range(2):
        _ledger(batch)
        publisher.get("/admin/channels/delivery/")
        with CaptureQueriesContext(connection) as queries:
            publisher.get("/admin/channels/delivery/")
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_a_delivery_is_read_only_and_titled_view(paula: Client) -> None:
    delivery = DeliveryFactory.create(status="failed")

    page = paula.get(f"/admin/channels/delivery/{delivery.pk}/change/").content.decode()
    posted = paula.post(f"/admin/channels/delivery/{delivery.pk}/change/", {"status": "sent"})

    assert "| View delivery |" in page
    assert "Change delivery" not in page
    assert 'name="_save"' not in page and 'name="_continue"' not in page
    assert posted.status_code == 403
    assert Delivery.objects.get(pk=delivery.pk).status == "failed"


def test_the_detail_page_names_the_recipient_to_a_publisher_only() -> None:
    from publishing.roles import PUBLISHER
    from tests.factories import SubscriberFactory

    reader = SubscriberFactory.create(email="reader@example.org", name="Ann")
    delivery = DeliveryFactory.create(subscriber=reader, status="sent")
    url = f"/admin/channels/delivery/{delivery.pk}/change/"
    publisher = _member("paula", PUBLISHER)
    auditor = Client()
    viewer = get_user_model().objects.create_user("vic", "vic@example.org", "pw", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    auditor.force_login(viewer)

    shown = publisher.get(url).content.decode()
    hidden = auditor.get(url).content.decode()
    hidden_list = auditor.get("/admin/channels/delivery/").content.decode()

    assert "Ann &lt;reader@example.org&gt;" in shown
    assert "reader@example.org" not in hidden and "reader@example.org" not in hidden_list
    assert f'<div class="readonly">{reader.pk}</div>' in hidden
    # Without the publish right the re-queue action is not offered either.
    assert 'value="requeue"' not in hidden_list
    assert 'value="requeue"' in publisher.get("/admin/channels/delivery/").content.decode()


def test_an_editor_does_not_see_the_ledger() -> None:
    from publishing.roles import EDITOR

    editor = _member("alice", EDITOR)

    assert editor.get("/admin/channels/delivery/").status_code == 403
