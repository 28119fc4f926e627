from __future__ import annotations

import base64
import email
import json
import re
from collections.abc import Callable
from email import policy
from email.message import EmailMessage

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from channels.backends import BackendError, Message, OutcomeStatus, get_backend_class
from channels.backends.base import UncertainPolicy
from channels.backends.email_ses import SesBackend
from channels.configuration import save_channel, send_test_message
from channels.models import Channel
from tests.channels.backends.conftest import (
    SENDER,
    SES_REGION,
    PeerMove,
    RawPeer,
    delayed,
    request_body,
    ses_sent_messages,
    wait_for_log,
)
from tests.channels.logs import production_logs
from tests.fixtures import provider_json

SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
UNSUBSCRIBE = {
    "List-Unsubscribe": "<https://news.example.com/u/tok123/>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}
SEND_PATH = "/v2/email/outbound-emails"


def make_backend(endpoint: str, **config: object) -> SesBackend:
    backend = get_backend_class("email_ses")(
        {
            "from_email": f"Publishing <{SENDER}>",
            "region": SES_REGION,
            "endpoint_url": endpoint,
            "timeout": 2.0,
            **config,
        },
        {"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": SECRET_KEY},
    )
    assert isinstance(backend, SesBackend)
    return backend


def message(delivery_id: int = 501, to: str = "reader@example.org") -> Message:
    return Message(
        delivery_id=delivery_id,
        to=to,
        subject="Spring issue",
        text="What is new this spring.\n\nUnsubscribe: https://news.example.com/u/tok123/",
        html="<p>What is <b>new</b> this spring.</p>",
        headers=UNSUBSCRIBE,
    )


def parsed(raw: str) -> EmailMessage:
    result = email.message_from_string(raw, policy=policy.default)
    assert isinstance(result, EmailMessage)
    return result


def test_it_sends_html_and_text_with_unsubscribe_headers_through_ses(
    ses_endpoint: str,
) -> None:
    backend = make_backend(ses_endpoint)

    [outcome] = backend.send([message(501)])
    backend.close()

    assert outcome.status == OutcomeStatus.SENT
    [sent] = ses_sent_messages()
    assert outcome.provider_message_id == sent.id
    assert "reader@example.org" in sent.destinations
    mime = parsed(sent.raw_data)
    assert mime["Subject"] == "Spring issue"
    assert mime["From"] == f"Publishing <{SENDER}>"
    assert mime["To"] == "reader@example.org"
    assert mime["List-Unsubscribe"] == UNSUBSCRIBE["List-Unsubscribe"]
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Unique, naming the delivery, in the sender's domain.
    assert re.fullmatch(r"<[\d.]+\.d501@example\.com>", mime["Message-ID"])
    assert mime.get_content_type() == "multipart/alternative"
    text = mime.get_body(("plain",))
    html = mime.get_body(("html",))
    assert text is not None and "What is new this spring." in text.get_content()
    assert html is not None and "<b>new</b>" in html.get_content()


def test_it_sends_prebuilt_mime_bytes_unchanged(ses_endpoint: str) -> None:
    raw = (
        f"From: {SENDER}\r\nTo: reader@example.org\r\nSubject: Prebuilt\r\n"
        "Message-ID: <fixed-1@example.com>\r\nList-Unsubscribe: <https://x.example/u/>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
    ).encode()

    [outcome] = make_backend(ses_endpoint).send(
        [Message(delivery_id=7, to="reader@example.org", raw=raw)]
    )

    assert outcome.status == OutcomeStatus.SENT
    [sent] = ses_sent_messages()
    assert sent.raw_data.encode() == raw


def test_each_message_of_a_batch_gets_its_own_outcome(ses_endpoint: str) -> None:
    batch = [message(1, "a@example.org"), message(2, "not an address"), message(3, "c@example.org")]

    outcomes = make_backend(ses_endpoint).send(batch)

    assert [(o.delivery_id, o.status) for o in outcomes] == [
        (1, OutcomeStatus.SENT),
        (2, OutcomeStatus.PERMANENT),
        (3, OutcomeStatus.SENT),
    ]
    assert len(ses_sent_messages()) == 2


def test_an_unverified_sender_is_permanent(ses_endpoint: str) -> None:
    backend = make_backend(ses_endpoint, from_email="someone@unverified.example")

    [outcome] = backend.send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert "MessageRejected" in outcome.error
    assert ses_sent_messages() == []


def test_it_passes_the_configuration_set_and_the_delivery_id(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEND_PATH, method="POST").respond_with_json(
        provider_json("ses", "send_email_ok")
    )
    backend = make_backend(httpserver.url_for("/"), configuration_set="newsletters")

    [outcome] = backend.send([message(88)])

    assert outcome.status == OutcomeStatus.SENT
    assert outcome.provider_message_id == provider_json("ses", "send_email_ok")["MessageId"]
    [(request, _)] = httpserver.log
    body = json.loads(request.get_data())
    assert body["ConfigurationSetName"] == "newsletters"
    assert body["EmailTags"] == [{"Name": "delivery_id", "Value": "88"}]
    assert body["Destination"] == {"ToAddresses": ["reader@example.org"]}
    assert b"List-Unsubscribe" in base64.b64decode(body["Content"]["Raw"]["Data"])


def test_throttling_is_rate_limited_not_failed(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEND_PATH).respond_with_json(
        provider_json("ses", "too_many_requests"),
        status=429,
        headers={"x-amzn-ErrorType": "TooManyRequestsException", "Retry-After": "2"},
    )

    [outcome] = make_backend(httpserver.url_for("/")).send([message()])

    assert outcome.status == OutcomeStatus.RATE_LIMITED
    assert outcome.retry_after == 2.0
    assert "TooManyRequestsException" in outcome.error
    # botocore's own retries are off: the engine schedules the next attempt.
    assert len(httpserver.log) == 1


def test_a_server_error_is_transient(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEND_PATH).respond_with_json(
        provider_json("ses", "internal_failure"),
        status=500,
        headers={"x-amzn-ErrorType": "InternalFailure"},
    )

    [outcome] = make_backend(httpserver.url_for("/")).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert len(httpserver.log) == 1


def test_a_paused_account_is_transient_so_the_circuit_holds_the_mail(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request(SEND_PATH).respond_with_json(
        {"message": "Sending is paused for this account."},
        status=400,
        headers={"x-amzn-ErrorType": "SendingPausedException"},
    )

    [outcome] = make_backend(httpserver.url_for("/")).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT


def test_a_rejected_message_is_permanent(httpserver: HTTPServer) -> None:
    httpserver.expect_request(SEND_PATH).respond_with_json(
        provider_json("ses", "message_rejected"),
        status=400,
        headers={"x-amzn-ErrorType": "MessageRejected"},
    )

    [outcome] = make_backend(httpserver.url_for("/")).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT


def test_an_unreachable_endpoint_is_transient_and_keeps_the_key_secret(
    closed_port_url: str,
) -> None:
    with production_logs() as logs:
        [outcome] = make_backend(closed_port_url).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert outcome.error.startswith("connection error: Could not connect to the endpoint URL")
    assert SECRET_KEY not in outcome.error
    assert SECRET_KEY not in logs.getvalue()
    assert "reader@example.org" not in logs.getvalue()


def test_a_read_timeout_is_uncertain_and_the_endpoint_did_get_the_message(
    httpserver: HTTPServer,
) -> None:
    ok = json.dumps(provider_json("ses", "send_email_ok"))
    httpserver.expect_request(SEND_PATH, method="POST").respond_with_handler(
        delayed(1.0, Response(ok, content_type="application/json"))
    )

    [outcome] = make_backend(httpserver.url_for("/"), timeout=0.3).send([message(89)])
    wait_for_log(httpserver, 1)

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert outcome.error == "no answer within 0.3s after the request was sent (uncertain)"
    # botocore's own retries are off: one request, and it arrived.
    [(request, _)] = httpserver.log
    assert json.loads(request.get_data())["EmailTags"] == [{"Name": "delivery_id", "Value": "89"}]


def test_a_connect_timeout_is_transient(full_backlog_url: str) -> None:
    [outcome] = make_backend(full_backlog_url, timeout=0.3).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "timed out after 0.3s before the request was fully sent" in outcome.error


@pytest.mark.parametrize("move", ["close", "reset", "truncate"])
def test_a_connection_dropped_after_the_request_was_read_is_uncertain(
    raw_peer: Callable[[PeerMove], RawPeer], move: PeerMove
) -> None:
    peer = raw_peer(move)

    [outcome] = make_backend(peer.url_for("/")).send([message(90)])

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert "after the request was sent" in outcome.error
    assert SECRET_KEY not in outcome.error
    [raw] = peer.received
    assert raw.startswith(f"POST {SEND_PATH} ".encode())
    body = json.loads(request_body(raw))
    assert body["EmailTags"] == [{"Name": "delivery_id", "Value": "90"}]


def test_a_write_that_times_out_before_the_request_is_sent_is_transient(
    raw_peer: Callable[[PeerMove], RawPeer],
) -> None:
    # The peer never reads: 30 MB of MIME (40 MB in base64) fill the socket buffers.
    peer = raw_peer("stall")
    big = Message(delivery_id=91, to="reader@example.org", raw=b"x" * 30_000_000)

    [outcome] = make_backend(peer.url_for("/"), timeout=0.3).send([big])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "before the request was fully sent" in outcome.error


def test_an_uncertain_message_is_resent_by_default() -> None:
    # Receivers' mail systems drop a repeat by its Message-ID.
    assert SesBackend.default_uncertain_policy == UncertainPolicy.RESEND


def test_check_passes_when_the_sender_is_a_verified_identity(httpserver: HTTPServer) -> None:
    httpserver.expect_request(f"/v2/email/identities/{SENDER}", method="GET").respond_with_json(
        provider_json("ses", "get_email_identity_verified")
    )

    make_backend(httpserver.url_for("/")).check()

    assert len(httpserver.log) == 1


def test_check_refuses_a_pending_or_unknown_sender(ses_endpoint: str) -> None:
    # moto, like SES, reports a freshly created identity as not yet verified.
    with pytest.raises(BackendError, match="not verified"):
        make_backend(ses_endpoint).check()
    with pytest.raises(BackendError, match="No SES identity"):
        make_backend(ses_endpoint, from_email="x@unknown.example").check()


def test_check_fails_when_ses_cannot_be_reached(closed_port_url: str) -> None:
    with pytest.raises(BackendError, match="unreachable"):
        make_backend(closed_port_url).check()


@pytest.mark.django_db
def test_a_test_message_of_an_ses_channel_reaches_the_given_address(ses_endpoint: str) -> None:
    channel = save_channel(
        Channel(name="Newsletter", kind="email_ses"),
        {
            "from_email": SENDER,
            "region": SES_REGION,
            "endpoint_url": ses_endpoint,
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": SECRET_KEY,
        },
    )

    outcome = send_test_message(channel, to="root@example.com")

    assert outcome.status == OutcomeStatus.SENT
    [sent] = ses_sent_messages()
    mime = parsed(sent.raw_data)
    assert mime["To"] == "root@example.com"
    assert mime["Subject"] == "Test message from Publishing"
    html = mime.get_body(("html",))
    assert html is not None and "Newsletter" in html.get_content()


def test_batches_of_one_configuration_share_one_client_in_a_process(ses_endpoint: str) -> None:
    first = make_backend(ses_endpoint)
    first.send([message(1)])
    first.close()
    second = make_backend(ses_endpoint)
    other = make_backend(ses_endpoint, region="eu-central-1")

    assert second.client is first.client
    assert other.client is not first.client
    outcomes = second.send([message(2)])
    assert [o.status for o in outcomes] == [OutcomeStatus.SENT]
