from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook, WebhookVerificationError
from werkzeug import Request, Response

from channels.backends import Message, OutcomeStatus, get_backend_class
from channels.backends.base import UncertainPolicy
from channels.backends.webhook import WebhookBackend
from tests.channels.backends.conftest import (
    PeerMove,
    RawPeer,
    delayed,
    request_body,
    request_headers,
    wait_for_log,
)
from tests.fixtures import provider_json

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def make_backend(url: str, timeout: float = 2.0, secret: str = SECRET) -> WebhookBackend:
    backend = get_backend_class("webhook")({"url": url, "timeout": timeout}, {"secret": secret})
    assert isinstance(backend, WebhookBackend)
    return backend


def message(delivery_id: int = 41) -> Message:
    return Message(
        delivery_id=delivery_id, payload=provider_json("webhook", "publication_published")
    )


def recorder(captured: list[Request], status: int = 200) -> Any:
    def handler(request: Request) -> Response:
        captured.append(request)
        return Response("", status=status)

    return handler


def test_it_posts_a_payload_a_receiver_verifies_with_standardwebhooks(
    httpserver: HTTPServer,
) -> None:
    captured: list[Request] = []
    httpserver.expect_request("/hooks", method="POST").respond_with_handler(recorder(captured))
    backend = make_backend(httpserver.url_for("/hooks"))

    [outcome] = backend.send([message(41)])

    assert outcome.status == OutcomeStatus.SENT
    assert outcome.delivery_id == 41
    [request] = captured
    body = request.get_data()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["webhook-id"] == "41"
    # As a receiver would: the standardwebhooks package checks signature and timestamp.
    verified = Webhook(SECRET).verify(body, dict(request.headers))
    assert verified == provider_json("webhook", "publication_published")


def test_its_signature_is_the_hmac_the_spec_describes(httpserver: HTTPServer) -> None:
    captured: list[Request] = []
    httpserver.expect_request("/hooks", method="POST").respond_with_handler(recorder(captured))

    make_backend(httpserver.url_for("/hooks")).send([message(7)])

    [request] = captured
    msg_id = request.headers["webhook-id"]
    timestamp = request.headers["webhook-timestamp"]
    # Standard Webhooks: HMAC-SHA256 over "id.timestamp.body", keyed with the base64-decoded
    # part of the secret after "whsec_", sent as "v1,<base64>".
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + request.get_data()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert request.headers["webhook-signature"] == f"v1,{expected}"
    assert json.loads(request.get_data()) == provider_json("webhook", "publication_published")


def test_a_receiver_refuses_a_body_changed_in_transit(httpserver: HTTPServer) -> None:
    captured: list[Request] = []
    httpserver.expect_request("/hooks", method="POST").respond_with_handler(recorder(captured))
    make_backend(httpserver.url_for("/hooks")).send([message()])

    [request] = captured
    tampered = request.get_data().replace(b"Spring", b"Autumn")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, dict(request.headers))
    other_secret = "whsec_" + base64.b64encode(b"another secret of 32 bytes here!").decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(request.get_data(), dict(request.headers))


def test_its_timestamp_is_the_time_of_sending(httpserver: HTTPServer) -> None:
    captured: list[Request] = []
    httpserver.expect_request("/hooks", method="POST").respond_with_handler(recorder(captured))
    sent_at = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    with time_machine.travel(sent_at, tick=False):
        make_backend(httpserver.url_for("/hooks")).send([message()])

    [request] = captured
    assert request.headers["webhook-timestamp"] == str(int(sent_at.timestamp()))
    # Five minutes later than the tolerance, a receiver refuses the replay.
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.get_data(), dict(request.headers))


def test_it_goes_through_429_then_500_then_a_timeout_before_delivering(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_ordered_request("/hooks", method="POST").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "30"}
    )
    httpserver.expect_ordered_request("/hooks", method="POST").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request("/hooks", method="POST").respond_with_handler(
        delayed(1.0, Response("late", status=200))
    )
    httpserver.expect_ordered_request("/hooks", method="POST").respond_with_data("", status=204)
    backend = make_backend(httpserver.url_for("/hooks"), timeout=0.3)

    outcomes = [backend.send([message(5)])[0] for _ in range(4)]
    # The late answer to the timed-out request goes out before the next test starts.
    wait_for_log(httpserver, 4)

    # The timed-out request reached the endpoint: it may have it, so the outcome is uncertain.
    assert [o.status for o in outcomes] == [
        OutcomeStatus.RATE_LIMITED,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.UNCERTAIN,
        OutcomeStatus.SENT,
    ]
    assert outcomes[0].retry_after == 30.0
    assert "HTTP 500" in outcomes[1].error
    assert outcomes[2].error == "no answer within 0.3s after the request was sent (uncertain)"
    assert outcomes[3].error == ""
    # The same delivery id on every attempt: the receiver can drop a repeat.
    assert {request.headers["webhook-id"] for request, _ in httpserver.log} == {"5"}
    backend.close()


def test_a_410_is_permanent_and_disables_the_endpoint(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks").respond_with_data("gone", status=410)

    [outcome] = make_backend(httpserver.url_for("/hooks")).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert outcome.disable_channel is True


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_other_4xx_answers_are_permanent_without_disabling(
    httpserver: HTTPServer, status: int
) -> None:
    httpserver.expect_request("/hooks").respond_with_data("no", status=status)

    [outcome] = make_backend(httpserver.url_for("/hooks")).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert outcome.disable_channel is False
    assert f"HTTP {status}" in outcome.error


def test_a_redirect_does_not_count_as_delivered(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hooks").respond_with_data(
        "", status=301, headers={"Location": httpserver.url_for("/elsewhere")}
    )

    [outcome] = make_backend(httpserver.url_for("/hooks")).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert len(httpserver.log) == 1


def test_a_refused_connection_is_transient(closed_port_url: str) -> None:
    [outcome] = make_backend(closed_port_url).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "connection error" in outcome.error


def test_a_read_timeout_is_uncertain_and_the_endpoint_did_get_the_request(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hooks", method="POST").respond_with_handler(
        delayed(1.0, Response("", status=204))
    )
    backend = make_backend(httpserver.url_for("/hooks"), timeout=0.3)

    [outcome] = backend.send([message(12)])
    wait_for_log(httpserver, 1)

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert outcome.error == "no answer within 0.3s after the request was sent (uncertain)"
    [(request, _)] = httpserver.log
    assert request.headers["webhook-id"] == "12"
    assert json.loads(request.get_data()) == provider_json("webhook", "publication_published")
    backend.close()


@pytest.mark.parametrize("move", ["close", "reset", "truncate"])
def test_a_connection_dropped_after_the_request_was_read_is_uncertain(
    raw_peer: Callable[[PeerMove], RawPeer], move: PeerMove
) -> None:
    peer = raw_peer(move)

    [outcome] = make_backend(peer.url_for("/hooks")).send([message(13)])

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert "after the request was sent" in outcome.error
    [raw] = peer.received
    assert request_headers(raw)["webhook-id"] == "13"
    assert json.loads(request_body(raw)) == provider_json("webhook", "publication_published")


def test_a_write_that_times_out_before_the_request_is_sent_is_transient(
    raw_peer: Callable[[PeerMove], RawPeer],
) -> None:
    # The peer never reads: 40 MB fill the socket buffers and the write times out.
    peer = raw_peer("stall")
    big = Message(delivery_id=14, payload={"text": "x" * 40_000_000})

    [outcome] = make_backend(peer.url_for("/hooks"), timeout=0.3).send([big])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "before the request was fully sent" in outcome.error


def test_a_connect_timeout_is_transient(full_backlog_url: str) -> None:
    [outcome] = make_backend(full_backlog_url, timeout=0.3).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "timed out after 0.3s before the request was fully sent" in outcome.error


def test_an_uncertain_delivery_is_resent_by_default() -> None:
    # Receivers drop a repeat by its webhook-id.
    assert WebhookBackend.default_uncertain_policy == UncertainPolicy.RESEND


def test_it_answers_one_outcome_per_message_in_order(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/hooks").respond_with_data("", status=200)
    httpserver.expect_ordered_request("/hooks").respond_with_data("", status=503)
    httpserver.expect_ordered_request("/hooks").respond_with_data("", status=202)

    outcomes = make_backend(httpserver.url_for("/hooks")).send([message(i) for i in (1, 2, 3)])

    assert [(o.delivery_id, o.status) for o in outcomes] == [
        (1, OutcomeStatus.SENT),
        (2, OutcomeStatus.TRANSIENT),
        (3, OutcomeStatus.SENT),
    ]


def test_the_secret_never_reaches_the_outcome_or_the_logs(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A careless endpoint echoes the signature and the secret back in its error page.
    def echo(request: Request) -> Response:
        return Response(f"bad signature {request.headers['webhook-signature']} {SECRET}", 400)

    httpserver.expect_request("/hooks").respond_with_handler(echo)
    caplog.set_level(logging.DEBUG)

    [outcome] = make_backend(httpserver.url_for("/hooks")).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert SECRET not in outcome.error
    assert SECRET.removeprefix("whsec_") not in outcome.error
    # The endpoint's body never reaches the outcome (decision 0071): its status does.
    assert outcome.error == "HTTP 400: the endpoint refused the message"
    assert SECRET not in caplog.text
    assert SECRET.removeprefix("whsec_") not in caplog.text


def test_check_passes_when_the_endpoint_answers_and_fails_when_nobody_listens(
    httpserver: HTTPServer, closed_port_url: str
) -> None:
    from channels.backends import BackendError

    httpserver.expect_request("/hooks", method="HEAD").respond_with_data("", status=405)
    make_backend(httpserver.url_for("/hooks")).check()

    with pytest.raises(BackendError, match="unreachable"):
        make_backend(closed_port_url).check()
