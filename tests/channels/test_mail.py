"""Site mail through the ledger (channels.mail.LedgerEmailBackend) and the file email backend."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from channels.models import Channel, Delivery
from subscribers.models import Suppression, email_hash
from tests.channels.conftest import SmtpSink, body

pytestmark = pytest.mark.django_db

LEDGER = "channels.mail.LedgerEmailBackend"


@pytest.fixture
def outbox_channel(tmp_path: Path) -> Channel:
    return Channel.objects.create(
        name="Outbox",
        kind="email_file",
        is_default_email=True,
        config={"directory": str(tmp_path / "outbox")},
    )


def test_site_mail_becomes_a_delivery_of_the_default_channel_and_is_sent_by_the_engine(
    settings: Any, smtp_channel: Channel, sink: SmtpSink, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = LEDGER
    with django_capture_on_commit_callbacks(execute=True):
        count = mail.send_mail(
            "Confirm your subscription",
            "Click the link.",
            "News <news@example.com>",
            ["ana@example.com", "bo@example.com"],
        )

    assert count == 1
    rows = Delivery.objects.filter(kind=Delivery.Kind.TRANSACTIONAL).order_by("recipient")
    found: list[Any] = list(rows.values_list("recipient", "status", "dispatch_id", "priority"))
    assert found == [
        ("ana@example.com", "sent", None, Delivery.PRIORITY_TRANSACTIONAL),
        ("bo@example.com", "sent", None, Delivery.PRIORITY_TRANSACTIONAL),
    ]
    assert sorted(sink.recipients) == ["ana@example.com", "bo@example.com"]
    parsed = email.message_from_bytes(sink.messages[0], policy=email.policy.default)
    assert parsed["Subject"] == "Confirm your subscription"
    assert parsed.get_content().strip() == "Click the link."


def test_site_mail_carries_a_message_id_at_the_sites_domain_not_localhost(
    settings: Any, smtp_channel: Channel, sink: SmtpSink, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_BACKEND = LEDGER
    settings.SITE_URL = "https://news.example.org"
    settings.DELIVERY_MESSAGE_ID_DOMAIN = ""
    with django_capture_on_commit_callbacks(execute=True):
        mail.send_mail("Confirm", "Click the link.", "news@example.com", ["ana@example.com"])

    parsed = email.message_from_bytes(sink.messages[0], policy=email.policy.default)
    assert str(parsed["Message-ID"]).endswith("@news.example.org>")


def test_site_mail_to_a_bounced_address_is_not_sent(
    settings: Any,
    outbox_channel: Channel,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.EMAIL_BACKEND = LEDGER
    Suppression.objects.create(email_hash=email_hash("Gone@Example.com"), reason="bounced")
    Suppression.objects.create(email_hash=email_hash("left@example.com"), reason="unsubscribed")
    with django_capture_on_commit_callbacks(execute=True):
        mail.send_mail("Hi", "Body", None, ["gone@example.com", "left@example.com"])

    statuses = dict(Delivery.objects.values_list("recipient", "status"))
    assert statuses == {"gone@example.com": "cancelled", "left@example.com": "sent"}
    written = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    sent = Delivery.objects.get(recipient="left@example.com")
    assert written == [f"{sent.pk}.eml"]
    assert sent.provider_message_id == f"{sent.pk}.eml"


def test_with_no_email_channel_site_mail_goes_to_the_fallback_backend(settings: Any) -> None:
    settings.EMAIL_BACKEND = LEDGER
    settings.LEDGER_FALLBACK_EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    assert mail.send_mail("Hi", "Body", None, ["ana@example.com"]) == 1

    assert Delivery.objects.count() == 0
    assert [m.to for m in mail.outbox] == [["ana@example.com"]]


def test_the_file_backend_replaces_a_retried_message_instead_of_adding_one(
    outbox_channel: Channel, tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    from channels.backends.base import Message
    from channels.configuration import build_backend

    backend = build_backend(outbox_channel)
    message = Message(delivery_id=7, to="ana@example.com", subject="S", text="T", html="<p>T</p>")

    first = backend.send([message])
    second = backend.send([message])

    assert [o.status for o in first + second] == ["sent", "sent"]
    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == ["7.eml"]
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "ana@example.com"
    assert body(files[0].read_bytes(), "html").strip() == "<p>T</p>"
    backend.check()
