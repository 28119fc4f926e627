from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Response

from channels.backends import BackendError, Message, OutcomeStatus, get_backend_class
from channels.backends.base import UncertainPolicy
from channels.backends.discord import DiscordBackend
from tests.channels.backends.conftest import PeerMove, RawPeer, delayed, request_body, wait_for_log
from tests.channels.logs import production_logs
from tests.fixtures import provider_json

WEBHOOK_PATH = "/api/webhooks/1200000000000000777/Tk3n-SeCrEt_part_0123456789abcdef"
PAYLOAD = {
    "embeds": [{"title": "Spring issue", "description": "What is new this spring. @everyone"}]
}


def make_backend(url: str, timeout: float = 2.0) -> DiscordBackend:
    backend = get_backend_class("discord")(
        {"username": "Publishing", "timeout": timeout}, {"webhook_url": url}
    )
    assert isinstance(backend, DiscordBackend)
    return backend


def message(delivery_id: int = 3) -> Message:
    return Message(delivery_id=delivery_id, payload=PAYLOAD)


def test_it_posts_the_embeds_and_keeps_discords_message_id(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        WEBHOOK_PATH, method="POST", query_string="wait=True"
    ).respond_with_json(provider_json("discord", "execute_ok"))

    [outcome] = make_backend(httpserver.url_for(WEBHOOK_PATH)).send([message(3)])

    assert outcome.status == OutcomeStatus.SENT
    assert outcome.provider_message_id == "1311700000000000042"
    [(request, _)] = httpserver.log
    sent = json.loads(request.get_data())
    assert sent["embeds"] == PAYLOAD["embeds"]
    assert sent["username"] == "Publishing"
    # "@everyone" in a publication must not ping a whole server.
    assert sent["allowed_mentions"] == {"parse": []}


def test_it_goes_through_429_then_500_then_a_timeout_before_delivering(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_ordered_request(WEBHOOK_PATH).respond_with_json(
        provider_json("discord", "rate_limited"), status=429, headers={"Retry-After": "2"}
    )
    httpserver.expect_ordered_request(WEBHOOK_PATH).respond_with_json(
        provider_json("discord", "server_error"), status=500
    )
    ok = json.dumps(provider_json("discord", "execute_ok"))
    httpserver.expect_ordered_request(WEBHOOK_PATH).respond_with_handler(
        delayed(1.0, Response(ok, content_type="application/json"))
    )
    httpserver.expect_ordered_request(WEBHOOK_PATH).respond_with_json(
        provider_json("discord", "execute_ok")
    )
    backend = make_backend(httpserver.url_for(WEBHOOK_PATH), timeout=0.3)

    outcomes = [backend.send([message()])[0] for _ in range(4)]
    # The late answer to the timed-out request goes out before the next test starts.
    wait_for_log(httpserver, 4)

    # The timed-out request reached Discord: it may have posted it, so the outcome is uncertain.
    assert [o.status for o in outcomes] == [
        OutcomeStatus.RATE_LIMITED,
        OutcomeStatus.TRANSIENT,
        OutcomeStatus.UNCERTAIN,
        OutcomeStatus.SENT,
    ]
    # The body's float retry_after wins over the rounded header.
    assert outcomes[0].retry_after == 1.337
    assert "500" in outcomes[1].error
    assert outcomes[2].error == "no answer within 0.3s after the request was sent (uncertain)"
    assert outcomes[3].provider_message_id == "1311700000000000042"


def test_a_read_timeout_is_uncertain_and_discord_did_get_the_post(
    httpserver: HTTPServer,
) -> None:
    ok = json.dumps(provider_json("discord", "execute_ok"))
    httpserver.expect_request(WEBHOOK_PATH, method="POST").respond_with_handler(
        delayed(1.0, Response(ok, content_type="application/json"))
    )

    [outcome] = make_backend(httpserver.url_for(WEBHOOK_PATH), timeout=0.3).send([message(4)])
    wait_for_log(httpserver, 1)

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert outcome.error == "no answer within 0.3s after the request was sent (uncertain)"
    [(request, _)] = httpserver.log
    assert json.loads(request.get_data())["embeds"] == PAYLOAD["embeds"]


def test_a_refused_connection_is_transient(closed_port_url: str) -> None:
    [outcome] = make_backend(closed_port_url.rstrip("/") + WEBHOOK_PATH).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert outcome.error.startswith("connection error: ")


def test_a_connect_timeout_is_transient(full_backlog_url: str) -> None:
    url = full_backlog_url.rstrip("/") + WEBHOOK_PATH

    [outcome] = make_backend(url, timeout=0.3).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "timed out after 0.3s before the request was fully sent" in outcome.error
    assert "Tk3n-SeCrEt" not in outcome.error


@pytest.mark.parametrize("move", ["close", "reset", "truncate"])
def test_a_connection_dropped_after_the_post_was_read_is_uncertain(
    raw_peer: Callable[[PeerMove], RawPeer], move: PeerMove
) -> None:
    peer = raw_peer(move)

    [outcome] = make_backend(peer.url_for(WEBHOOK_PATH)).send([message(5)])

    assert outcome.status == OutcomeStatus.UNCERTAIN
    assert "after the request was sent" in outcome.error
    assert "Tk3n-SeCrEt" not in outcome.error
    [raw] = peer.received
    assert json.loads(request_body(raw))["embeds"] == PAYLOAD["embeds"]


def test_an_uncertain_post_is_not_sent_again_by_default() -> None:
    # Everybody in the server would see the post twice.
    assert DiscordBackend.default_uncertain_policy == UncertainPolicy.SKIP


@pytest.mark.parametrize(
    ("status", "fixture"), [(404, "unknown_webhook"), (401, "invalid_webhook_token")]
)
def test_a_deleted_webhook_or_bad_token_is_permanent(
    httpserver: HTTPServer, status: int, fixture: str
) -> None:
    httpserver.expect_request(WEBHOOK_PATH).respond_with_json(
        provider_json("discord", fixture), status=status
    )

    [outcome] = make_backend(httpserver.url_for(WEBHOOK_PATH)).send([message()])

    assert outcome.status == OutcomeStatus.PERMANENT
    assert provider_json("discord", fixture)["message"] in outcome.error


def test_an_html_error_page_from_a_proxy_is_transient(httpserver: HTTPServer) -> None:
    httpserver.expect_request(WEBHOOK_PATH).respond_with_data(
        "<html>502 Bad Gateway</html>", status=502, content_type="text/html"
    )

    [outcome] = make_backend(httpserver.url_for(WEBHOOK_PATH)).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT


def test_the_webhook_token_never_reaches_the_outcome_or_the_logs(closed_port_url: str) -> None:
    url = closed_port_url.rstrip("/") + WEBHOOK_PATH

    with production_logs() as logs:
        [outcome] = make_backend(url).send([message()])

    assert outcome.status == OutcomeStatus.TRANSIENT
    assert "connection error" in outcome.error
    assert "Tk3n-SeCrEt" not in outcome.error
    assert "Tk3n-SeCrEt" not in logs.getvalue()
    assert "discord delivery 3" in logs.getvalue()


def test_check_reads_the_webhook_and_fails_when_discord_forgot_it(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_ordered_request(WEBHOOK_PATH, method="GET").respond_with_json(
        provider_json("discord", "webhook_get")
    )
    httpserver.expect_ordered_request(WEBHOOK_PATH, method="GET").respond_with_json(
        provider_json("discord", "unknown_webhook"), status=404
    )
    backend = make_backend(httpserver.url_for(WEBHOOK_PATH))

    backend.check()
    with pytest.raises(BackendError, match="Unknown Webhook") as raised:
        backend.check()
    assert "Tk3n-SeCrEt" not in str(raised.value)


def test_check_fails_when_discord_cannot_be_reached(closed_port_url: str) -> None:
    with pytest.raises(BackendError, match="unreachable"):
        make_backend(closed_port_url.rstrip("/") + WEBHOOK_PATH).check()


def test_its_own_log_lines_name_the_delivery_not_the_url(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request(WEBHOOK_PATH).respond_with_json(
        provider_json("discord", "unknown_webhook"), status=404
    )
    caplog.set_level(logging.DEBUG, logger="channels")

    make_backend(httpserver.url_for(WEBHOOK_PATH)).send([message(77)])

    [line] = [r.getMessage() for r in caplog.records if r.name == "channels.backends.discord"]
    assert "discord delivery 77: permanent" in line
    assert "Tk3n" not in line
