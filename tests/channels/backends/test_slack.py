from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from channels.backends import BackendError, Message, OutcomeStatus, get_backend_class
from channels.backends.base import UncertainPolicy
from channels.backends.slack import SlackBackend
from tests.channels.backends.conftest import PeerMove, RawPeer, delayed, request_body, wait_for_log
from tests.channels.logs import production_logs
from tests.conftest import PUBLIC_ADDRESS, REBINDING_HOST
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


MODES = ["bot", "webhook"]
WEBHOOK_PATH = "/services/T000/B000/XXXX"


def slack_at(mode: str, url_for: Callable[[str], str], timeout: float = 2.0) -> SlackBackend:
    """A bot (posting to ``/api/chat.postMessage``) or an incoming webhook on a local peer."""
    config: dict[str, object] = {"mode": mode, "timeout": timeout}
    if mode == "bot":
        config |= {"channel": "C0123456789", "base_url": url_for("/api/")}
        secrets = {"bot_token": TOKEN}
    else:
        secrets = {"webhook_url": url_for(WEBHOOK_PATH)}
    backend = get_backend_class("slack")(config, secrets)
    assert isinstance(backend, SlackBackend)
    return backend


def peer_path(mode: str) -> str:
    return "/api/chat.postMessage" if mode == "bot" else WEBHOOK_PATH


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

    # The timed-out request reached Slack: it may have posted it, so the outcome is uncertain.
    assert [o.status for o in outcomes] == [
        OutcomeStatus.RATE_LIMITED,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.UNCERTAIN,
        OutcomeStatus.SENT,
    ]
    assert outcomes[0].retry_after == 12.0
    assert "HTTP 500" in outcomes[1].error
    assert outcomes[2].error == "no answer within 0.3s after the request was sent (uncertain)"
    # slack-sdk's own retry handlers are off: exactly one request per send.
    assert len(httpserver.log) == 4


@pytest.mark.parametrize("mode", MODES)
def test_a_read_timeout_is_uncertain_and_slack_did_get_the_post(
    httpserver: HTTPServer, mode: str
) -> None:
    ok = json.dumps(provider_json("slack", "chat_postMessage_ok")) if mode == "bot" else "ok"
    httpserver.expect_request(peer_path(mode), method="POST").respond_with_handler(
        delayed(1.0, Response(ok, content_type="application/json"))
    )

    [outcome] = slack_at(mode, httpserver.url_for, timeout=0.3).send([message()])
    wait_for_log(httpserver, 1)

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert outcome.error == "no answer within 0.3s after the request was sent (uncertain)"
    [(request, _)] = httpserver.log
    assert json.loads(request.get_data())["blocks"] == PAYLOAD["blocks"]


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_connection_is_transient(closed_port_url: str, mode: str) -> None:
    [outcome] = slack_at(mode, lambda path: closed_port_url.rstrip("/") + path).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert outcome.error.startswith("connection error: ")


@pytest.mark.parametrize("mode", MODES)
def test_a_connect_timeout_is_transient(full_backlog_url: str, mode: str) -> None:
    backend = slack_at(mode, lambda path: full_backlog_url.rstrip("/") + path, timeout=0.3)

    [outcome] = backend.send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "timed out after 0.3s before the request was fully sent" in outcome.error


@pytest.mark.parametrize("move", ["close", "reset", "truncate"])
@pytest.mark.parametrize("mode", MODES)
def test_a_connection_dropped_after_the_post_was_read_is_uncertain(
    raw_peer: Callable[[PeerMove], RawPeer], mode: str, move: PeerMove
) -> None:
    peer = raw_peer(move)

    [outcome] = slack_at(mode, peer.url_for).send([message()])

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert "after the request was sent" in outcome.error
    [raw] = peer.received
    assert raw.startswith(f"POST {peer_path(mode)} ".encode())
    assert json.loads(request_body(raw))["blocks"] == PAYLOAD["blocks"]


@pytest.mark.parametrize("mode", MODES)
def test_a_write_that_times_out_before_the_post_is_sent_is_transient(
    raw_peer: Callable[[PeerMove], RawPeer], mode: str
) -> None:
    # The peer never reads: 40 MB fill the socket buffers and the write times out (urllib
    # wraps it in a URLError, unlike a timeout waiting for the answer).
    peer = raw_peer("stall")
    big = Message(delivery_id=9, payload={"text": "x" * 40_000_000})

    [outcome] = slack_at(mode, peer.url_for, timeout=0.3).send([big])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "before the request was fully sent" in outcome.error


def test_an_uncertain_post_is_not_sent_again_by_default() -> None:
    # Everybody in the channel would see the post twice.
    assert SlackBackend.default_uncertain_policy == UncertainPolicy.SKIP


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
        OutcomeStatus.UNCERTAIN,
        OutcomeStatus.SENT,
    ]
    assert outcomes[0].retry_after == 3.0
    assert "uncertain" in outcomes[2].error


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


@pytest.mark.parametrize("mode", MODES)
def test_a_slack_host_whose_dns_changes_after_the_check_is_not_reached(
    httpserver: HTTPServer, rebinding_dns: list[str], settings: Any, mode: str
) -> None:
    # slack-sdk resolves the name itself: its socket may still reach only the checked address.
    settings.OUTBOUND_ALLOWED_HOSTS = []
    httpserver.expect_request(peer_path(mode)).respond_with_json({"ok": True, "ts": "1.2"})
    backend = slack_at(mode, lambda path: f"http://{REBINDING_HOST}:{httpserver.port}{path}")

    [outcome] = backend.send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert "now leads to 127.0.0.1" in outcome.error
    assert rebinding_dns == [PUBLIC_ADDRESS, "127.0.0.1"]
    assert httpserver.log == []
    # By now the name itself resolves to the loopback address: the check refuses it.
    with pytest.raises(BackendError, match=r"\(127\.0\.0\.1\) is a loopback address"):
        backend.check()
    assert httpserver.log == []
