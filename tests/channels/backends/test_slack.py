from __future__ import annotations

import json
import logging

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from channels.backends import BackendError, Message, OutcomeStatus, get_backend_class
from channels.backends.slack import SlackBackend
from tests.channels.backends.conftest import delayed, wait_for_log
from tests.channels.logs import production_logs
from tests.fixtures import provider_json

TOKEN = "xoxb-1111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"
PAYLOAD = {
    "text": "Spring issue",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "Spring issue"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "What is new this spring."}},
    ],
}


def bot(httpserver: HTTPServer, timeout: float = 2.0) -> SlackBackend:
    backend = get_backend_class("slack")(
        {
            "mode": "bot",
            "channel": "C0123456789",
            "base_url": httpserver.url_for("/api/"),
            "timeout": timeout,
        },
        {"bot_token": TOKEN},
    )
    assert isinstance(backend, SlackBackend)
    return backend


def incoming_webhook(url: str, timeout: float = 2.0) -> SlackBackend:
    backend = get_backend_class("slack")(
        {"mode": "webhook", "timeout": timeout}, {"webhook_url": url}
    )
    assert isinstance(backend, SlackBackend)
    return backend


def message(delivery_id: int = 9) -> Message:
    return Message(delivery_id=delivery_id, payload=PAYLOAD)


def test_it_posts_blocks_to_the_channel_with_the_bot_token(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/chat.postMessage",
        method="POST",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ).respond_with_json(provider_json("slack", "chat_postMessage_ok"))

    [outcome] = bot(httpserver).send([message(9)])

    assert outcome.status == OutcomeStatus.SENT
    assert outcome.provider_message_id == "1764339600.000200"
    [(request, _)] = httpserver.log
    sent = json.loads(request.get_data())
    assert sent["channel"] == "C0123456789"
    assert sent["text"] == "Spring issue"
    assert sent["blocks"] == PAYLOAD["blocks"]


def test_it_goes_through_429_then_500_then_a_timeout_before_delivering(
    httpserver: HTTPServer,
) -> None:
    path = "/api/chat.postMessage"
    httpserver.expect_ordered_request(path).respond_with_json(
        provider_json("slack", "error_ratelimited"), status=429, headers={"Retry-After": "12"}
    )
    httpserver.expect_ordered_request(path).respond_with_data(
        "<html>Bad Gateway</html>", status=500, content_type="text/html"
    )
    ok = json.dumps(provider_json("slack", "chat_postMessage_ok"))
    httpserver.expect_ordered_request(path).respond_with_handler(
        delayed(1.5, Response(ok, content_type="application/json"))
    )
    httpserver.expect_ordered_request(path).respond_with_json(
        provider_json("slack", "chat_postMessage_ok")
    )
    backend = bot(httpserver, timeout=0.3)

    outcomes = [backend.send([message()])[0] for _ in range(4)]
    # The late answer to the timed-out request goes out before the next test starts.
    wait_for_log(httpserver, 4)

    assert [o.status for o in outcomes] == [
        OutcomeStatus.RATE_LIMITED,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.SENT,
    ]
    assert outcomes[0].retry_after == 12.0
    assert "HTTP 500" in outcomes[1].error
    assert "timed out" in outcomes[2].error
    # slack-sdk's own retry handlers are off: exactly one request per send.
    assert len(httpserver.log) == 4


@pytest.mark.parametrize("error", ["error_invalid_auth", "error_channel_not_found"])
def test_an_invalid_token_or_channel_is_permanent(httpserver: HTTPServer, error: str) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        provider_json("slack", error)
    )

    [outcome] = bot(httpserver).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert provider_json("slack", error)["error"] in outcome.error


def test_slacks_internal_error_is_transient(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        provider_json("slack", "error_internal")
    )

    [outcome] = bot(httpserver).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT


def test_the_token_never_reaches_the_outcome_or_the_logs(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A peer that echoes the token back in its error.
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": f"invalid_auth for {TOKEN}"}
    )
    caplog.set_level(logging.DEBUG)

    with production_logs() as logs:
        [outcome] = bot(httpserver).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert TOKEN not in outcome.error
    # Our own lines never hold it; slack-sdk's debug lines do, until the redacting filter.
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("channels")]
    assert ours
    assert not any(TOKEN in line for line in ours)
    assert "slack_sdk" in logs.getvalue()
    assert TOKEN not in logs.getvalue()


def test_an_incoming_webhook_posts_the_blocks(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/services/T000/B000/XXXX", method="POST").respond_with_data("ok")

    [outcome] = incoming_webhook(httpserver.url_for("/services/T000/B000/XXXX")).send([message()])

    assert outcome.status == OutcomeStatus.SENT
    [(request, _)] = httpserver.log
    assert json.loads(request.get_data()) == PAYLOAD


def test_an_incoming_webhook_goes_through_429_then_500_then_a_timeout(
    httpserver: HTTPServer,
) -> None:
    path = "/services/T000/B000/XXXX"
    httpserver.expect_ordered_request(path).respond_with_data(
        "rate_limited", status=429, headers={"Retry-After": "3"}
    )
    httpserver.expect_ordered_request(path).respond_with_data("internal_error", status=500)
    httpserver.expect_ordered_request(path).respond_with_handler(delayed(1.5, Response("ok")))
    httpserver.expect_ordered_request(path).respond_with_data("ok")
    backend = incoming_webhook(httpserver.url_for(path), timeout=0.3)

    outcomes = [backend.send([message()])[0] for _ in range(4)]
    # The late answer to the timed-out request goes out before the next test starts.
    wait_for_log(httpserver, 4)

    assert [o.status for o in outcomes] == [
        OutcomeStatus.RATE_LIMITED,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.SENT,
    ]
    assert outcomes[0].retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "body"),
    [(403, "invalid_token"), (404, "no_service"), (410, "channel_is_archived")],
)
def test_a_revoked_or_archived_incoming_webhook_is_permanent(
    httpserver: HTTPServer, status: int, body: str
) -> None:
    secret_path = "/services/T000/B000/SecretPart123456"
    httpserver.expect_request(secret_path).respond_with_data(body, status=status)
    url = httpserver.url_for(secret_path)

    [outcome] = incoming_webhook(url).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert body in outcome.error
    assert "SecretPart123456" not in outcome.error


def test_an_unreachable_incoming_webhook_is_transient_and_its_url_stays_secret(
    closed_port_url: str,
) -> None:
    url = closed_port_url + "services/T000/B000/SecretPart123456"

    [outcome] = incoming_webhook(url).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "SecretPart123456" not in outcome.error


def test_check_calls_auth_test_with_the_token(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/api/auth.test").respond_with_json(
        provider_json("slack", "auth_test_ok")
    )
    httpserver.expect_ordered_request("/api/auth.test").respond_with_json(
        provider_json("slack", "error_invalid_auth")
    )
    backend = bot(httpserver)

    backend.check()
    with pytest.raises(BackendError, match="invalid_auth"):
        backend.check()


def test_check_of_an_incoming_webhook_posts_nothing_visible(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/services/a").respond_with_data("no_text", status=400)
    httpserver.expect_ordered_request("/services/a").respond_with_data("no_service", status=404)
    backend = incoming_webhook(httpserver.url_for("/services/a"))

    backend.check()
    with pytest.raises(BackendError, match="404"):
        backend.check()
    [(request, _), _] = httpserver.log
    assert json.loads(request.get_data()) == {"text": ""}
