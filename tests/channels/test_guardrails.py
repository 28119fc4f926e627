"""Guardrails (decision 0085): a dispatch whose email bounces or draws complaints too often is
paused, its Publishers told, and a Publisher resumes or cancels it; soft bounces suppress an
address that keeps bouncing; Slack and Discord errors that name a gone channel disable it.

Sending goes through the real engine to an aiosmtpd server that refuses some recipients at
RCPT (a hard bounce at the door); SES feedback comes as signed SNS notifications to the real
endpoint; Slack and Discord are HTTP servers on loopback answering as the real ones do.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, cast

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf
from pytest_httpserver import HTTPServer

from channels.configuration import save_channel
from channels.engine import abtest, batches, fanout, guardrails, journal
from channels.models import Channel, Delivery, SoftBounce
from publishing.models import Dispatch, Topic
from publishing.roles import EDITOR, PUBLISHER, assign_role_permissions
from subscribers.models import Subscriber, Suppression, email_hash
from tests.channels.conftest import SmtpSink, add_subscribers, make_dispatch
from tests.channels.sns_peer import SnsPeer, bounce, complaint
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def guard(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A minimum sample of 100 messages; every bounce is looked at (no throttle); enqueued
    tasks wait in the queue, so each test drives the batches itself."""
    settings.GUARDRAIL_MIN_SAMPLE = 100
    settings.GUARDRAIL_CHECK_SECONDS = 0
    monkeypatch.setattr(Conf, "SYNC", False)


def member(username: str, role: str, **fields: Any) -> User:
    assign_role_permissions()
    user = cast(User, UserFactory.create(username=username, is_staff=True, **fields))
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def drain(channel: Channel) -> int:
    sent = 0
    while (claimed := batches.send_batch(channel.pk, chain=False).claimed) > 0:
        sent += claimed
    return sent


def statuses(dispatch: Dispatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in Delivery.objects.filter(dispatch=dispatch).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


@pytest.mark.django_db(transaction=True)
def test_refusals_over_the_limit_pause_a_dispatch_a_publisher_resumes_then_cancels(
    guard: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    people = add_subscribers(topic, 300)
    # Every tenth address is refused at RCPT: a 10% hard-bounce rate, over the 5% limit.
    sink.refuse_rcpt = {person.email for person in people[::10]}
    ada = member("ada", PUBLISHER, email="ada@example.com")
    member("ed", EDITOR, email="ed@example.com")
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)

    drain(smtp_channel)

    # Batches of 50: the first (5 refused of 50) is below the minimum sample; the second
    # (10 of 100) pauses the dispatch. Nothing more is sent; the rest is held.
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED
    assert statuses(dispatch) == {"sent": 90, "failed": 10, "held": 200}
    assert len(sink.messages) == 90
    assert dispatch.pause_reason == (
        "Hard-bounce rate 10.0% (10 of 100 messages) is above the limit of 5.0%."
    )
    assert dispatch.guardrail["pauses"][0]["counts"] == {
        "attempted": 100,
        "sent": 90,
        "bounced": 10,
        "complained": 0,
    }
    # The Publishers (not the Editors) are told by email, with the page to act on.
    [notice] = mail.outbox
    assert notice.to == ["ada@example.com"]
    assert "Sending paused" in notice.subject
    assert dispatch.pause_reason in notice.body
    assert f"/admin/publishing/dispatch/{dispatch.pk}/change/" in notice.body
    # ... and in the admin, on every page, and on the dispatch's page with the two buttons.
    publisher = logged_in(ada)
    home = publisher.get("/admin/").content.decode()
    assert 'id="paused-dispatches"' in home and dispatch.pause_reason in home
    page = publisher.get(f"/admin/publishing/dispatch/{dispatch.pk}/change/").content.decode()
    assert 'id="resume-dispatch"' in page and 'id="cancel-dispatch"' in page
    assert "200 messages are held" in page
    # The sweeper finds nothing to send for it, and a resend of the batch holds nothing new.
    assert drain(smtp_channel) == 0
    fanout.finish_dispatches()
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED

    answer = publisher.post(f"/admin/publishing/dispatch/{dispatch.pk}/resume/")

    assert answer.status_code == 302
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SENDING
    assert dispatch.guardrail["baseline"]["attempted"] == 100
    assert dispatch.guardrail["resumes"][0]["by"] == "ada"
    # Measured again from the resume: 100 more messages at the same rate pause it again.
    drain(smtp_channel)
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED
    assert statuses(dispatch) == {"sent": 180, "failed": 20, "held": 100}
    assert len(mail.outbox) == 2

    answer = publisher.post(f"/admin/publishing/dispatch/{dispatch.pk}/cancel/")

    assert answer.status_code == 302
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.CANCELLED
    assert dispatch.finished_at is not None
    assert statuses(dispatch) == {"sent": 180, "failed": 20, "cancelled": 100}
    assert drain(smtp_channel) == 0
    assert len(sink.messages) == 180
    # Each subscriber got at most one message.
    assert len(set(sink.recipients)) == len(sink.recipients)
    assert publisher.get("/admin/").content.decode().count('id="paused-dispatches"') == 0


def test_below_the_limit_or_the_sample_a_dispatch_is_not_paused(
    guard: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    people = add_subscribers(topic, 300)
    sink.refuse_rcpt = {person.email for person in people[::25]}  # 4%: under 5%
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)

    drain(smtp_channel)

    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.DONE
    assert statuses(dispatch) == {"sent": 288, "failed": 12}
    assert guardrails.verdict(guardrails.Counts(99, 50, 49, 9)) is None  # under the sample
    assert guardrails.verdict(guardrails.Counts(100, 95, 5, 0)) is None  # at the limit
    assert guardrails.verdict(guardrails.Counts(100, 94, 6, 0)) == guardrails.REASON_BOUNCES


def test_only_a_publisher_may_resume_or_cancel(
    guard: None, topic: Topic, smtp_channel: Channel
) -> None:
    add_subscribers(topic, 20)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    assert guardrails.pause(dispatch.pk, "Paused for the test.")
    editor = logged_in(member("ed", EDITOR))

    page = editor.get(f"/admin/publishing/dispatch/{dispatch.pk}/change/").content.decode()
    assert 'id="resume-dispatch"' not in page
    assert "Only a Publisher may resume or cancel it." in page
    assert 'id="paused-dispatches"' not in editor.get("/admin/").content.decode()
    assert editor.post(f"/admin/publishing/dispatch/{dispatch.pk}/resume/").status_code == 403
    assert editor.post(f"/admin/publishing/dispatch/{dispatch.pk}/cancel/").status_code == 403
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED
    assert statuses(dispatch) == {"held": 20}
    # Resuming or cancelling what is not paused changes nothing.
    assert guardrails.resume(dispatch.pk) == 20
    assert guardrails.resume(dispatch.pk) is None
    assert guardrails.cancel(dispatch.pk) is None


def paused_dispatch(topic: Topic) -> Dispatch:
    """A dispatch to 10 subscribers, planned and paused before anything was sent."""
    add_subscribers(topic, 10)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    assert guardrails.pause(dispatch.pk, "Paused for the test.")
    return dispatch


def test_a_retry_due_while_its_dispatch_is_paused_is_held_not_sent(
    guard: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    dispatch = paused_dispatch(topic)
    # A row the pause did not catch (a retry put back in the queue, a lease recovered).
    Delivery.objects.filter(dispatch=dispatch).update(status=Delivery.Status.QUEUED)

    report = batches.send_batch(smtp_channel.pk, chain=False)

    assert report.claimed == 10 and report.held == 10
    assert sink.messages == []
    assert statuses(dispatch) == {"held": 10}


def test_cancelling_also_cancels_a_retry_queued_again_while_paused(
    guard: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    dispatch = paused_dispatch(topic)
    # A row in flight at the pause failed transiently and was put back in the queue.
    retried = Delivery.objects.filter(dispatch=dispatch).first()
    assert retried is not None
    Delivery.objects.filter(pk=retried.pk).update(status=Delivery.Status.QUEUED, attempts=1)

    assert guardrails.cancel(dispatch.pk) == 10
    drain(smtp_channel)

    assert sink.messages == []
    assert statuses(dispatch) == {"cancelled": 10}


def test_a_retry_of_a_dispatch_cancelled_while_it_was_in_flight_is_cancelled_not_sent(
    guard: None, topic: Topic, smtp_channel: Channel, sink: SmtpSink
) -> None:
    dispatch = paused_dispatch(topic)
    assert guardrails.cancel(dispatch.pk) == 10
    # Three rows were in flight at the cancel (claimed before the pause): they come back as
    # retries, one of them in fact accepted by the server before its worker died.
    rows = list(Delivery.objects.filter(dispatch=dispatch).order_by("pk")[:3])
    Delivery.objects.filter(pk__in=[row.pk for row in rows]).update(
        status=Delivery.Status.QUEUED, attempts=1, last_error=""
    )
    journal.record(rows[0].pk, "250 queued as A", timezone.now())

    report = batches.send_batch(smtp_channel.pk, chain=False)

    assert report.claimed == 3
    assert report.cancelled == 2
    assert report.outcomes == {Delivery.Status.SENT: 1}
    assert sink.messages == []
    assert statuses(dispatch) == {"cancelled": 9, "sent": 1}
    sent = Delivery.objects.get(pk=rows[0].pk)
    assert sent.provider_message_id == "250 queued as A"


def test_a_paused_ab_test_decides_only_once_resumed_and_a_cancelled_one_never(
    guard: None, topic: Topic, smtp_channel: Channel
) -> None:
    add_subscribers(topic, 100)
    dispatch = make_dispatch(topic, subjects=["One", "Two"], ab_share=20, ab_min_sample=5)
    fanout.plan_dispatch(dispatch.pk)
    drain(smtp_channel)
    assert guardrails.pause(dispatch.pk, "Paused for the test.")
    later = timezone.now() + timedelta(days=2)

    assert abtest.decide_due(later) == 0
    assert Delivery.objects.filter(dispatch=dispatch).count() == 20

    guardrails.resume(dispatch.pk)
    assert abtest.decide_due(later) == 1
    assert Delivery.objects.filter(dispatch=dispatch).count() == 100

    other = make_dispatch(topic, subjects=["One", "Two"], ab_share=20, ab_min_sample=5)
    fanout.plan_dispatch(other.pk)
    guardrails.pause(other.pk, "Paused for the test.")
    guardrails.cancel(other.pk)
    assert abtest.decide_due(later) == 0
    assert not Delivery.objects.filter(dispatch=other).exclude(status="cancelled").exists()


# --- SES feedback: complaints and bounces after sending, soft bounces ----------------------------


def sent_dispatch(topic: Topic, channel: Channel, count: int) -> tuple[Dispatch, list[Delivery]]:
    """A dispatch whose first ``count`` messages went out, each with its SES message id, and
    as many more queued."""
    add_subscribers(topic, 2 * count)
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    rows = list(Delivery.objects.filter(dispatch=dispatch).order_by("pk"))
    for row in rows[:count]:
        row.status = Delivery.Status.SENT
        row.provider_message_id = f"ses-{row.pk}"
        row.sent_at = timezone.now()
    Delivery.objects.bulk_update(rows[:count], ["status", "provider_message_id", "sent_at"])
    return dispatch, rows


def address(row: Delivery) -> str:
    assert row.subscriber is not None
    return row.subscriber.email


def notify(client: Client, sns: SnsPeer, event: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(
        "/hooks/ses/",
        data=json.dumps(sns.notification(event)).encode(),
        content_type="text/plain",
        headers={"x-amz-sns-message-type": "Notification"},
    )
    assert answer.status_code == 200, answer.content
    return cast(dict[str, Any], answer.json())


@pytest.mark.django_db(transaction=True)
def test_complaints_over_the_limit_pause_a_dispatch(
    guard: None, topic: Topic, smtp_channel: Channel, client: Client, sns: SnsPeer
) -> None:
    dispatch, rows = sent_dispatch(topic, smtp_channel, 200)
    member("ada", PUBLISHER, email="ada@example.com")

    # One complaint in 200 is 0.5%, over the 0.1% limit, once the sample is reached.
    notify(client, sns, complaint("event", [address(rows[0])], messageId=f"ses-{rows[0].pk}"))

    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED
    assert dispatch.pause_reason.startswith("Complaint rate 0.50% (1 of 200 messages)")
    assert statuses(dispatch) == {"sent": 200, "held": 200}
    assert len(mail.outbox) == 1


def test_permanent_bounces_reported_later_count_and_the_sweeper_checks_too(
    guard: None, topic: Topic, smtp_channel: Channel, client: Client, sns: SnsPeer, settings: Any
) -> None:
    settings.GUARDRAIL_MIN_SAMPLE = 300
    dispatch, rows = sent_dispatch(topic, smtp_channel, 200)
    for row in rows[:20]:
        notify(client, sns, bounce("event", [address(row)], messageId=f"ses-{row.pk}"))
    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.SENDING  # 20 of 200: 10%, but under the sample

    # More is sent without a new bounce: the sample is reached, 20 of 300 is 6.7%.
    more = rows[200:300]
    for row in more:
        row.status = Delivery.Status.SENT
    Delivery.objects.bulk_update(more, ["status"])
    assert guardrails.check_sending() == 1

    dispatch.refresh_from_db()
    assert dispatch.status == Dispatch.Status.PAUSED
    assert dispatch.pause_reason.startswith("Hard-bounce rate 6.7% (20 of 300 messages)")
    assert statuses(dispatch) == {"sent": 300, "held": 100}


def test_soft_bounces_suppress_an_address_after_the_limit_within_the_window(
    client: Client, sns: SnsPeer, settings: Any
) -> None:
    settings.SOFT_BOUNCE_LIMIT = 3
    settings.SOFT_BOUNCE_WINDOW_DAYS = 30
    bob = Subscriber.objects.create(email="bob@example.com", status="active")
    now = timezone.now()

    def soft(days_ago: float, **fields: Any) -> dict[str, Any]:
        event = bounce("event", [bob.email], "Transient", **fields)
        when = now - timedelta(days=days_ago)
        event["bounce"]["timestamp"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return notify(client, sns, event)

    # One old soft bounce (outside the window) and two recent ones: not yet.
    assert soft(45, messageId="m-1")["suppressed"] == 0
    assert soft(20, messageId="m-2")["suppressed"] == 0
    assert soft(10, messageId="m-3")["suppressed"] == 0
    assert not Suppression.objects.exists()
    assert SoftBounce.objects.filter(email_hash=email_hash(bob.email)).count() == 3

    third = soft(1, messageId="m-4")

    assert third["suppressed"] == 1
    suppression = Suppression.objects.get()
    assert suppression.email_hash == email_hash(bob.email)
    assert suppression.reason == Suppression.Reason.BOUNCED
    assert suppression.note.startswith("3 SES transient bounces within 30 days")
    assert bob.email not in suppression.note
    bob.refresh_from_db()
    assert bob.status == Subscriber.Status.BOUNCED


def test_with_no_soft_bounce_limit_nobody_is_suppressed(
    client: Client, sns: SnsPeer, settings: Any
) -> None:
    settings.SOFT_BOUNCE_LIMIT = 0
    for n in range(4):
        notify(client, sns, bounce("event", ["bob@example.com"], "Transient", messageId=f"m{n}"))
    assert SoftBounce.objects.count() == 4
    assert not Suppression.objects.exists()


# --- Slack and Discord: a gone channel is disabled, with the reason ------------------------------


def broadcast_channel(kind: str, config: dict[str, Any]) -> Channel:
    channel = Channel(name=f"Team {kind}", kind=kind, batch_size=10)
    return save_channel(channel, config)


def publish_to(topic: Topic) -> Dispatch:
    dispatch = make_dispatch(topic)
    fanout.plan_dispatch(dispatch.pk)
    return dispatch


@pytest.mark.parametrize(
    ("code", "disabled"),
    [("channel_not_found", True), ("invalid_auth", True), ("msg_too_long", False)],
)
def test_slack_errors_that_name_the_channel_disable_it_with_the_reason(
    guard: None,
    topic: Topic,
    httpserver: HTTPServer,
    code: str,
    disabled: bool,
) -> None:
    httpserver.expect_request("/api/chat.postMessage", method="POST").respond_with_json(
        {"ok": False, "error": code}
    )
    channel = broadcast_channel(
        "slack",
        {
            "mode": "bot",
            "channel": "C0123",
            "bot_token": "xoxb-secret-token",
            "base_url": httpserver.url_for("/api/"),
        },
    )
    dispatch = publish_to(topic)

    batches.send_batch(channel.pk, chain=False)

    channel.refresh_from_db()
    assert Delivery.objects.get(dispatch=dispatch, channel=channel).status == "failed"
    assert channel.is_enabled is not disabled
    if disabled:
        assert channel.disabled_reason == f"HTTP 200: {code}"
        assert channel.disabled_at is not None
        assert "xoxb-secret-token" not in channel.disabled_reason
    else:
        assert channel.disabled_reason == ""


def test_a_deleted_discord_webhook_disables_the_channel_and_enabling_it_clears_the_reason(
    guard: None,
    topic: Topic,
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/api/webhooks/1/token", method="POST").respond_with_json(
        {"message": "Unknown Webhook", "code": 10015}, status=404
    )
    channel = broadcast_channel(
        "discord", {"webhook_url": httpserver.url_for("/api/webhooks/1/token")}
    )
    Channel.objects.filter(pk=channel.pk).update(batch_size=1)
    publish_to(topic)
    waiting = publish_to(topic)

    batches.send_batch(channel.pk, chain=False)

    channel.refresh_from_db()
    assert channel.is_enabled is False
    assert channel.disabled_reason == "HTTP 404: Unknown Webhook"
    # Disabled: the rest waits, untouched, for someone to fix the channel.
    assert batches.send_batch(channel.pk, chain=False).claimed == 0
    assert Delivery.objects.get(dispatch=waiting, channel=channel).status == "queued"
    admin = logged_in(User.objects.create_superuser("root", "r@example.com", "x" * 12))
    listing = admin.get("/admin/channels/channel/").content.decode()
    assert "HTTP 404: Unknown Webhook" in listing

    channel.is_enabled = True
    save_channel(channel, {"webhook_url": httpserver.url_for("/api/webhooks/1/token")})
    channel.refresh_from_db()
    assert (channel.disabled_reason, channel.disabled_at) == ("", None)
