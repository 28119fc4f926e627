from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from publishing.models import Topic
from subscribers.models import ConsentEvent, Subscriber, Suppression, email_hash
from tests.factories import SubscriberFactory, SuppressionFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client: Client) -> Client:
    client.force_login(UserFactory.create(username="alice", is_superuser=True))
    return client


def test_the_admin_imports_a_file_and_shows_the_report(admin_client_: Client, news: Topic) -> None:
    SuppressionFactory.create(email="erased@example.com", reason=Suppression.Reason.ERASED)
    upload = SimpleUploadedFile(
        "people.csv", b"email,name\nann@example.com,Ann\nerased@example.com,X\nbad\n", "text/csv"
    )

    response = admin_client_.post(
        "/admin/subscribers/subscriber/import/",
        {"file": upload, "topics": [news.pk], "confirmed": "on", "consent_note": "Fair 2026"},
    )

    assert response.status_code == 200
    assert b"Rows read: 3; created: 1; updated: 0; skipped: 2" in response.content
    assert b"line 3: the address is on the suppression list (erased)" in response.content
    ann = Subscriber.objects.get()
    assert (ann.email, ann.status, ann.source) == ("ann@example.com", "active", "admin-import")
    assert ConsentEvent.objects.get().detail["note"] == "Fair 2026"


def test_the_admin_import_requires_a_consent_note_when_confirmed(admin_client_: Client) -> None:
    upload = SimpleUploadedFile("people.csv", b"email\nann@example.com\n", "text/csv")

    response = admin_client_.post(
        "/admin/subscribers/subscriber/import/", {"file": upload, "confirmed": "on"}
    )

    assert response.status_code == 400
    assert b"Say where and when they consented." in response.content
    assert not Subscriber.objects.exists()


def test_the_admin_exports_csv(admin_client_: Client) -> None:
    SubscriberFactory.create(email="ann@example.com")

    response = admin_client_.get("/admin/subscribers/subscriber/export/")

    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[1].startswith("ann@example.com,")
    assert admin_client_.get("/admin/subscribers/subscriber/").status_code == 200


def test_the_admin_actions_unsubscribe_and_erase_through_the_services(
    admin_client_: Client,
) -> None:
    ann = SubscriberFactory.create(email="ann@example.com")
    ben = SubscriberFactory.create(email="ben@example.com")

    admin_client_.post(
        "/admin/subscribers/subscriber/",
        {"action": "unsubscribe_selected", "_selected_action": [ann.pk]},
    )
    admin_client_.post(
        "/admin/subscribers/subscriber/",
        {"action": "erase_selected", "_selected_action": [ben.pk]},
    )

    ann.refresh_from_db()
    assert ann.status == Subscriber.Status.UNSUBSCRIBED
    assert not Subscriber.objects.filter(pk=ben.pk).exists()
    reasons = dict(Suppression.objects.values_list("email_hash", "reason"))
    assert reasons == {
        email_hash("ann@example.com"): "unsubscribed",
        email_hash("ben@example.com"): "erased",
    }


def test_the_consent_log_is_read_only(admin_client_: Client) -> None:
    SubscriberFactory.create()

    response = admin_client_.get("/admin/subscribers/consentevent/add/")

    assert response.status_code == 403


def test_the_admin_cannot_change_a_status_by_hand(admin_client_: Client) -> None:
    ann = SubscriberFactory.create(email="ann@example.com")

    response = admin_client_.get(f"/admin/subscribers/subscriber/{ann.pk}/change/")

    assert response.status_code == 200
    assert b'name="status"' not in response.content
    assert b'name="email"' in response.content
