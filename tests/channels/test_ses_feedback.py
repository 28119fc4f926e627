"""POST /hooks/ses/: SES bounces and complaints as Amazon SNS delivers them, signed for real.

Every message here is signed with an RSA key whose certificate a real HTTPS server on loopback
serves (tests/channels/sns_peer.py); the endpoint fetches it as it would from AWS.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from channels.models import Delivery, SesFeedback
from subscribers.models import ConsentEvent, Subscriber, Suppression, email_hash
from tests.channels.sns_peer import (
    CERT_PATH,
    TOPIC_ARN,
    SnsPeer,
    bounce,
    complaint,
    make_key_and_certificate,
    ses_event,
    sns_timestamp,
)
from tests.conftest import PUBLIC_ADDRESS, REBINDING_HOST
from tests.factories import ChannelFactory, SubscriberFactory, SuppressionFactory

pytestmark = pytest.mark.django_db
URL = "/hooks/ses/"
BOB = "bob@example.com"
CAROL = "carol@example.com"


def post(client: Client, message: dict[str, str] | bytes, content_type: str = "text/plain") -> Any:
    body = message if isinstance(message, bytes) else json.dumps(message).encode()
    return client.post(
        URL,
        data=body,
        content_type=content_type,
        headers={"x-amz-sns-message-type": "Notification"},
    )


def nothing_stored() -> bool:
    return (
        not SesFeedback.objects.exists()
        and not Suppression.objects.exists()
        and not ConsentEvent.objects.exists()
    )


def sent_delivery(address: str, provider_id: str) -> Delivery:
    subscriber = SubscriberFactory.create(email=address)
    channel = ChannelFactory.create(kind="email_ses")
    return Delivery.objects.create(
        channel=channel,
        subscriber=subscriber,
        status=Delivery.Status.SENT,
        provider_message_id=provider_id,
        next_attempt_at=datetime.now(UTC),
    )


def test_the_endpoint_is_named_in_the_channels_urls() -> None:
    assert reverse("channels:ses-feedback") == URL


@pytest.mark.parametrize(("shape", "version"), [("notification", "1"), ("event", "2")])
def test_a_permanent_bounce_suppresses_every_recipient_and_marks_the_delivery(
    client: Client, sns: SnsPeer, shape: str, version: str
) -> None:
    delivery = sent_delivery(BOB, "ses-message-1")
    event = bounce(shape, [BOB, CAROL], messageId="ses-message-1")

    answer = post(client, sns.notification(event, version=version))

    assert answer.status_code == 200, answer.content
    assert answer.json() == {
        "result": "processed",
        "type": "bounce",
        "subtype": "Permanent",
        "suppressed": 2,
    }
    assert "sessionid" not in answer.cookies
    suppressions = {s.email_hash: s for s in Suppression.objects.all()}
    assert set(suppressions) == {email_hash(BOB), email_hash(CAROL)}
    bob = suppressions[email_hash(BOB)]
    assert bob.reason == Suppression.Reason.BOUNCED
    assert (
        bob.note
        == "SES bounce (Permanent): smtp; 550 5.1.1 <[address]>: Recipient address rejected"
    )
    assert BOB not in bob.note  # the note outlives an erasure: no address in it
    assert Subscriber.objects.get(email=BOB).status == Subscriber.Status.BOUNCED
    events = ConsentEvent.objects.filter(action=ConsentEvent.Action.BOUNCE)
    assert sorted(e.email_hash for e in events) == sorted([email_hash(BOB), email_hash(CAROL)])
    assert {e.detail["via"] for e in events} == {"ses"}
    feedback = SesFeedback.objects.get()
    assert feedback.delivery == delivery
    assert (feedback.type, feedback.subtype, feedback.suppressed) == ("bounce", "Permanent", 2)
    assert feedback.topic_arn == TOPIC_ARN
    assert [r["email_hash"] for r in feedback.detail["recipients"]] == [
        email_hash(BOB),
        email_hash(CAROL),
    ]
    assert BOB not in json.dumps(feedback.detail)
    assert list(delivery.ses_feedback.all()) == [feedback]


@pytest.mark.parametrize("bounce_type", ["Transient", "Undetermined"])
def test_a_transient_or_undetermined_bounce_is_recorded_but_suppresses_nobody(
    client: Client, sns: SnsPeer, bounce_type: str
) -> None:
    delivery = sent_delivery(BOB, "ses-message-2")
    event = bounce("event", [BOB], bounce_type, messageId="ses-message-2")

    answer = post(client, sns.notification(event))

    assert answer.status_code == 200
    assert answer.json()["result"] == "processed"
    assert answer.json()["suppressed"] == 0
    assert not Suppression.objects.exists()
    assert not ConsentEvent.objects.exists()
    assert Subscriber.objects.get(email=BOB).status == Subscriber.Status.ACTIVE
    feedback = SesFeedback.objects.get()
    assert (feedback.subtype, feedback.suppressed, feedback.delivery) == (bounce_type, 0, delivery)


@pytest.mark.parametrize(("shape", "version"), [("notification", "2"), ("event", "1")])
def test_a_complaint_suppresses_the_address_and_outranks_an_unsubscribe(
    client: Client, sns: SnsPeer, shape: str, version: str
) -> None:
    SubscriberFactory.create(email=BOB, status=Subscriber.Status.UNSUBSCRIBED)
    SuppressionFactory.create(email=BOB, reason=Suppression.Reason.UNSUBSCRIBED)

    answer = post(client, sns.notification(complaint(shape, [BOB]), version=version))

    assert answer.status_code == 200
    assert answer.json()["type"] == "complaint"
    assert answer.json()["subtype"] == "abuse"
    suppression = Suppression.objects.get()
    assert suppression.reason == Suppression.Reason.COMPLAINED
    assert suppression.note == "SES complaint (abuse)"
    assert Subscriber.objects.get(email=BOB).status == Subscriber.Status.COMPLAINED
    event = ConsentEvent.objects.get()
    assert event.action == ConsentEvent.Action.COMPLAINT
    assert event.detail["suppression"] == Suppression.Reason.COMPLAINED
    assert SesFeedback.objects.get().delivery is None  # SES sent it, not a delivery we know


def test_a_bounce_never_lifts_an_erasure_or_a_complaint(client: Client, sns: SnsPeer) -> None:
    SuppressionFactory.create(email=BOB, reason=Suppression.Reason.ERASED)
    SuppressionFactory.create(email=CAROL, reason=Suppression.Reason.COMPLAINED)

    answer = post(client, sns.notification(bounce("notification", [BOB, CAROL])))

    assert answer.json()["suppressed"] == 0
    reasons = dict(Suppression.objects.values_list("email_hash", "reason"))
    assert reasons == {
        email_hash(BOB): Suppression.Reason.ERASED,
        email_hash(CAROL): Suppression.Reason.COMPLAINED,
    }


def test_a_delivery_notification_is_acknowledged_and_changes_nothing(
    client: Client, sns: SnsPeer
) -> None:
    answer = post(client, sns.notification(ses_event("delivery_notification")))

    assert answer.status_code == 200
    assert answer.json()["result"] == "ignored"
    assert nothing_stored()


def test_a_replayed_message_id_is_acknowledged_without_acting_again(
    client: Client, sns: SnsPeer
) -> None:
    message = sns.notification(bounce("notification", [BOB]))
    first = post(client, message)
    Suppression.objects.all().delete()  # an operator lifted it meanwhile

    again = post(client, message)

    assert first.json()["result"] == "processed"
    assert again.status_code == 200
    assert again.json()["result"] == "replayed"
    assert SesFeedback.objects.count() == 1
    assert ConsentEvent.objects.count() == 1
    assert not Suppression.objects.exists()


def test_application_json_is_accepted_and_other_content_types_are_refused(
    client: Client, sns: SnsPeer
) -> None:
    message = sns.notification(bounce("notification", [BOB]))

    form = client.post(URL, data={"Type": "Notification"})
    answer = post(client, message, content_type="application/json")

    assert form.status_code == 415
    assert form.json()["error"] == "unsupported_media_type"
    assert answer.status_code == 200
    assert Suppression.objects.get().reason == Suppression.Reason.BOUNCED


def test_a_get_is_not_allowed(client: Client) -> None:
    assert client.get(URL).status_code == 405


def test_a_forged_signature_is_refused_and_changes_nothing(client: Client, sns: SnsPeer) -> None:
    mallory_key, _ = make_key_and_certificate("mallory")
    forged = sns.notification(bounce("notification", [BOB]), key=mallory_key)

    answer = post(client, forged)

    assert answer.status_code == 403
    assert answer.json() == {
        "error": "bad_signature",
        "detail": "The message signature does not verify.",
    }
    assert nothing_stored()


def test_a_body_altered_after_signing_is_refused(client: Client, sns: SnsPeer) -> None:
    message = sns.notification(bounce("notification", [BOB]))
    message["Message"] = json.dumps(bounce("notification", [CAROL]))

    answer = post(client, message)

    assert answer.status_code == 403
    assert answer.json()["error"] == "bad_signature"
    assert nothing_stored()


def test_an_unknown_signature_version_is_refused(client: Client, sns: SnsPeer) -> None:
    message = sns.notification(bounce("notification", [BOB]))
    message["SignatureVersion"] = "3"

    answer = post(client, message)

    assert answer.status_code == 400
    assert answer.json()["error"] == "unsupported_signature_version"
    assert nothing_stored()


@pytest.mark.parametrize(
    "url",
    [
        "https://localhost:{port}" + CERT_PATH,  # the right server under a host not allowed
        "http://127.0.0.1:{port}" + CERT_PATH,  # not https
        "https://127.0.0.1:{port}@evil.example" + CERT_PATH,
        "https://sns.eu-west-1.amazonaws.com.evil.example" + CERT_PATH,
    ],
)
def test_a_certificate_url_on_a_host_not_allowed_is_refused_without_fetching_it(
    client: Client, sns: SnsPeer, url: str
) -> None:
    cert_url = url.format(port=sns.server.port)
    message = sns.notification(bounce("notification", [BOB]), cert_url=cert_url)

    answer = post(client, message)

    assert answer.status_code == 403
    assert answer.json()["error"] == "untrusted_url"
    assert "SigningCertURL" in answer.json()["detail"]
    assert sns.server.log == []
    assert nothing_stored()


def test_a_certificate_host_that_resolves_to_a_private_address_is_not_fetched(
    client: Client, sns: SnsPeer, settings: Any
) -> None:
    # A pattern that lets an internal host through (an operator's mistake) meets the outbound
    # guard: the fetch is refused before it connects.
    settings.OUTBOUND_ALLOWED_HOSTS = []
    answer = post(client, sns.notification(bounce("notification", [BOB])))

    assert answer.status_code == 403
    assert answer.json()["error"] == "untrusted_url"
    assert "127.0.0.1 is a loopback address" in answer.json()["detail"]
    assert sns.server.log == []
    assert nothing_stored()


def test_a_certificate_host_whose_dns_changes_after_the_check_is_not_fetched(
    client: Client, sns: SnsPeer, settings: Any, rebinding_dns: list[str]
) -> None:
    # The name passes the check with a public address, then resolves to the local peer.
    settings.OUTBOUND_ALLOWED_HOSTS = []
    settings.SES_FEEDBACK_CERT_HOST_PATTERN = r"rebind\.example:\d+"
    cert_url = f"https://{REBINDING_HOST}:{sns.server.port}{CERT_PATH}"
    answer = post(client, sns.notification(bounce("notification", [BOB]), cert_url=cert_url))

    assert answer.status_code == 403
    assert answer.json()["error"] == "untrusted_url"
    assert "now leads to 127.0.0.1" in answer.json()["detail"]
    assert rebinding_dns == [PUBLIC_ADDRESS, "127.0.0.1"]
    assert sns.server.log == []
    assert nothing_stored()


def test_the_production_pattern_trusts_only_aws_sns_hosts(settings: Any) -> None:
    from channels.sns import SnsMessageError, check_sns_url

    settings.SES_FEEDBACK_CERT_HOST_PATTERN = r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
    good = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem"
    assert check_sns_url(good, "SigningCertURL") == good
    for bad in (
        "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
        "https://s3.amazonaws.com/sns.eu-west-1.amazonaws.com/x.pem",
        "https://evil-sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com.attacker.net/x.pem",
    ):
        with pytest.raises(SnsMessageError):
            check_sns_url(bad, "SigningCertURL")


def test_the_certificate_is_fetched_once_per_url(client: Client, sns: SnsPeer) -> None:
    post(client, sns.notification(bounce("notification", [BOB])))
    post(client, sns.notification(bounce("notification", [CAROL])))

    assert [request.path for request, _ in sns.server.log] == [CERT_PATH]
    assert Suppression.objects.count() == 2


def test_a_topic_not_in_the_allowlist_is_refused(client: Client, sns: SnsPeer) -> None:
    other = "arn:aws:sns:eu-west-1:999999999999:someone-else"

    answer = post(client, sns.notification(bounce("notification", [BOB]), topic_arn=other))

    assert answer.status_code == 403
    assert answer.json()["error"] == "topic_not_allowed"
    assert other in answer.json()["detail"]
    assert sns.server.log == []  # refused before any certificate is fetched
    assert nothing_stored()


def test_with_no_topic_configured_the_endpoint_refuses_everything(
    client: Client, sns: SnsPeer, settings: Any
) -> None:
    settings.SES_FEEDBACK_TOPIC_ARNS = []

    answer = post(client, sns.notification(bounce("notification", [BOB])))

    assert answer.status_code == 403
    assert answer.json()["error"] == "no_topics_configured"
    assert "SES_FEEDBACK_TOPIC_ARNS" in answer.json()["detail"]
    assert nothing_stored()


def test_a_message_older_than_the_window_is_refused(client: Client, sns: SnsPeer) -> None:
    old = sns_timestamp(datetime.now(UTC) - timedelta(seconds=3601))

    answer = post(client, sns.notification(bounce("notification", [BOB]), timestamp=old))

    assert answer.status_code == 400
    assert answer.json()["error"] == "too_old"
    assert "SES_FEEDBACK_MAX_AGE_SECONDS" in answer.json()["detail"]
    assert nothing_stored()


def test_a_message_from_the_future_is_refused(client: Client, sns: SnsPeer) -> None:
    later = sns_timestamp(datetime.now(UTC) + timedelta(minutes=10))

    answer = post(client, sns.notification(bounce("notification", [BOB]), timestamp=later))

    assert answer.status_code == 400
    assert answer.json()["error"] == "from_the_future"
    assert nothing_stored()


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "The body is not JSON."),
        (b"[1, 2]", "The body is not a JSON object."),
        (b'{"Type": "Hello"}', "Unknown SNS message Type: 'Hello'."),
        (b'{"Type": ["Notification"]}', "Unknown SNS message Type: ['Notification']."),
        (
            b'{"Type": "Notification", "Message": {}, "MessageId": "1", "Timestamp": "x", '
            b'"TopicArn": "t", "SignatureVersion": "1", "Signature": "s", "SigningCertURL": "u"}',
            "Fields not strings: Message.",
        ),
        (
            b'{"Type": "Notification", "Message": "{}"}',
            "The Notification message lacks MessageId, Timestamp, TopicArn, SignatureVersion, "
            "Signature, SigningCertURL.",
        ),
    ],
)
def test_a_malformed_body_is_refused_by_name(
    client: Client, sns: SnsPeer, body: bytes, detail: str
) -> None:
    answer = post(client, body)

    assert answer.status_code == 400
    assert answer.json() == {"error": "malformed", "detail": detail}
    assert nothing_stored()


def test_a_signed_bounce_without_recipients_is_refused(client: Client, sns: SnsPeer) -> None:
    event = bounce("notification", [BOB])
    event["bounce"]["bouncedRecipients"] = []

    answer = post(client, sns.notification(event))

    assert answer.status_code == 400
    assert answer.json()["error"] == "malformed_event"
    assert nothing_stored()


def test_a_signed_message_that_is_not_an_ses_event_is_ignored(client: Client, sns: SnsPeer) -> None:
    message = sns.sign(
        {
            "Type": "Notification",
            "MessageId": "a-console-test",
            "TopicArn": TOPIC_ARN,
            "Message": "Hello from the SNS console",
            "Timestamp": sns_timestamp(),
        }
    )

    answer = post(client, message)

    assert answer.status_code == 200
    assert answer.json()["result"] == "ignored"
    assert nothing_stored()


def test_a_subscription_confirmation_gets_its_subscribe_url(client: Client, sns: SnsPeer) -> None:
    sns.server.expect_request("/confirm", method="GET").respond_with_data(
        "<ConfirmSubscriptionResponse/>", content_type="text/xml"
    )
    message = sns.confirmation()

    answer = post(client, message)

    assert answer.status_code == 200
    assert answer.json() == {"result": "confirmed"}
    confirmations = [request for request, _ in sns.server.log if request.path == "/confirm"]
    assert len(confirmations) == 1
    assert confirmations[0].args["Token"] == message["Token"]
    assert confirmations[0].args["Action"] == "ConfirmSubscription"


def test_a_subscription_confirmation_for_another_host_is_not_followed(
    client: Client, sns: SnsPeer
) -> None:
    message = sns.confirmation(subscribe_url=f"https://localhost:{sns.server.port}/confirm")

    answer = post(client, message)

    assert answer.status_code == 403
    assert answer.json()["error"] == "untrusted_url"
    assert "SubscribeURL" in answer.json()["detail"]
    assert [request.path for request, _ in sns.server.log] == [CERT_PATH]


def test_a_subscription_confirmation_for_an_unknown_topic_is_not_followed(
    client: Client, sns: SnsPeer, settings: Any
) -> None:
    settings.SES_FEEDBACK_TOPIC_ARNS = ["arn:aws:sns:eu-west-1:123456789012:another"]

    answer = post(client, sns.confirmation())

    assert answer.status_code == 403
    assert answer.json()["error"] == "topic_not_allowed"
    assert sns.server.log == []


def test_a_failed_confirmation_answers_502_so_sns_tries_again(client: Client, sns: SnsPeer) -> None:
    sns.server.expect_request("/confirm").respond_with_data("no", status=403)

    answer = post(client, sns.confirmation())

    assert answer.status_code == 502
    assert answer.json()["error"] == "confirmation_failed"


def test_an_unsubscribe_confirmation_is_logged(
    client: Client, sns: SnsPeer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="channels.views"):
        answer = post(client, sns.confirmation("UnsubscribeConfirmation"))

    assert answer.status_code == 200
    assert answer.json() == {"result": "unsubscribed"}
    assert any(TOPIC_ARN in record.getMessage() for record in caplog.records)
    assert not any(request.path == "/confirm" for request, _ in sns.server.log)


def test_an_unreachable_certificate_answers_502(client: Client, sns: SnsPeer) -> None:
    message = sns.notification(
        bounce("notification", [BOB]),
        cert_url=f"https://127.0.0.1:{sns.server.port}/missing.pem",
    )

    answer = post(client, message)

    assert answer.status_code == 502
    assert answer.json()["error"] == "certificate_unavailable"
    assert nothing_stored()


def test_a_bad_host_pattern_or_topic_arn_is_reported_by_manage_check(settings: Any) -> None:
    from channels.checks import check_ses_feedback

    settings.SES_FEEDBACK_CERT_HOST_PATTERN = "sns.(unclosed"
    settings.SES_FEEDBACK_TOPIC_ARNS = [TOPIC_ARN, "ses-feedback"]

    errors = check_ses_feedback()

    assert [error.id for error in errors] == ["channels.E006", "channels.E007"]
    assert "'ses-feedback'" in errors[1].msg
