from __future__ import annotations

import pytest
from django.core.management import call_command

from publishing.models import Topic
from subscribers.models import ConsentEvent, Subscriber, Suppression, email_hash
from tests.factories import SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    call_command(*args)
    return capsys.readouterr().out


def test_subscriber_status_shows_state_topics_and_suppression(
    capsys: pytest.CaptureFixture[str], news: Topic
) -> None:
    bob = SubscriberFactory.create(email="bob@example.com")
    SubscriptionFactory.create(subscriber=bob, topic=news)

    out = run(capsys, "subscriber_status", "BOB@example.com")

    assert f"subscriber: {bob.pk}" in out
    assert "status: active" in out
    assert "topics: news" in out
    assert "suppressed: no" in out


def test_subscriber_status_reports_an_unknown_but_suppressed_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Suppression.objects.create(email_hash=email_hash("x@example.com"), reason="bounced")

    out = run(capsys, "subscriber_status", "x@example.com")

    assert "subscriber: none" in out
    assert "suppressed: bounced" in out


def test_unsubscribe_command_unsubscribes_once(capsys: pytest.CaptureFixture[str]) -> None:
    bob = SubscriberFactory.create(email="bob@example.com")

    first = run(capsys, "unsubscribe", "bob@example.com")
    second = run(capsys, "unsubscribe", "bob@example.com")

    assert "unsubscribed." in first
    assert "already unsubscribed" in second
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.UNSUBSCRIBED
    assert ConsentEvent.objects.get().detail == {"via": "command"}


def test_unsubscribe_command_suppresses_an_unknown_address(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = run(capsys, "unsubscribe", "stranger@example.com")

    assert "now suppressed" in out
    assert Suppression.objects.get().email_hash == email_hash("stranger@example.com")


def test_erase_command_keeps_only_the_hash(capsys: pytest.CaptureFixture[str]) -> None:
    bob = SubscriberFactory.create(email="bob@example.com")

    out = run(capsys, "erase_subscriber", "bob@example.com")

    assert f"Subscriber {bob.pk} erased" in out
    assert not Subscriber.objects.exists()
    assert Suppression.objects.get().reason == Suppression.Reason.ERASED
    assert "no" not in run(capsys, "subscriber_status", "bob@example.com").split("suppressed:")[1]


def test_erase_command_suppresses_an_unknown_address(capsys: pytest.CaptureFixture[str]) -> None:
    out = run(capsys, "erase_subscriber", "ghost@example.com")

    assert "on the suppression list" in out
    assert Suppression.objects.get().reason == Suppression.Reason.ERASED


def test_export_command_writes_csv_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    SubscriberFactory.create(email="a@example.com", status="active")
    SubscriberFactory.create(email="b@example.com", status="unsubscribed")

    out = run(capsys, "export_subscribers", "--status", "active")

    assert out.splitlines()[0].startswith("email,name,status")
    assert "a@example.com" in out
    assert "b@example.com" not in out
