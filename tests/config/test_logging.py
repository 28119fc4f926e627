from __future__ import annotations

import copy
import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.test import Client

from config.redaction import redact


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """The project's logging configuration, writing to a buffer instead of stdout."""
    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["stdout"]["stream"] = stream
    config["handlers"]["stdout"]["formatter"] = "json"
    logging.config.dictConfig(config)
    try:
        yield stream
    finally:
        logging.config.dictConfig(settings.LOGGING)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_log_line_is_json_with_the_address_masked_and_the_token_removed(
    log_stream: io.StringIO,
) -> None:
    token = "eyJpZCI6NDJ9:1uQx2b:Xq0rT5wYpL3nK8sV2mZ7cB4dF6gH9jA1"
    logging.getLogger("subscribers.views").info(
        "confirmation sent to %s with link https://x.test/confirm/%s/",
        "jane.doe@example.com",
        token,
    )
    [line] = lines(log_stream)
    assert line["levelname"] == "INFO"
    assert line["name"] == "subscribers.views"
    assert (
        line["message"]
        == "confirmation sent to j***@example.com with link https://x.test/confirm/[token]/"
    )
    assert "jane.doe" not in log_stream.getvalue()
    assert token not in log_stream.getvalue()


@pytest.mark.django_db
def test_djangos_request_log_line_and_its_request_extra_carry_no_link_token(
    log_stream: io.StringIO, client: Client
) -> None:
    token = "WzQyLCJhYmMiXQ:1xZd9v:ltMiEhSFN-4VdgPfsydIzUkSG_Wpwcf3shHb-yBsElE"

    response = client.get(f"/preferences/{token}/")

    assert response.status_code == 400
    [line] = [line for line in lines(log_stream) if line["name"] == "django.request"]
    assert line["message"] == "Bad Request: /preferences/[token]/"
    assert line["request"] == "<WSGIRequest: GET '/preferences/[token]/'>"
    assert "ltMiEhSFN" not in log_stream.getvalue()


def test_exception_messages_and_tracebacks_are_redacted_too(log_stream: io.StringIO) -> None:
    try:
        raise ValueError(
            "cannot send to bob@example.org: Authorization: Bearer sk_live_ABCDEF123456"
        )
    except ValueError:
        logging.getLogger("channels").exception("send failed for %s", "bob@example.org")
    output = log_stream.getvalue()
    [line] = lines(log_stream)
    assert line["message"] == "send failed for b***@example.org"
    assert "b***@example.org" in str(line["exc_info"])
    assert "Bearer [redacted]" in str(line["exc_info"])
    assert "bob@example.org" not in output
    assert "sk_live_ABCDEF123456" not in output


def test_every_line_of_a_request_carries_its_request_id(
    client: Client, log_stream: io.StringIO
) -> None:
    response = client.get("/no-such-page/", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 404
    assert response["X-Request-ID"] == "req-123"
    records = lines(log_stream)
    assert records, "Django logs the 404"
    assert {record["request_id"] for record in records} == {"req-123"}


def test_a_request_without_an_id_gets_a_fresh_one(client: Client) -> None:
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})["X-Request-ID"]
    assert len(first) == 32
    assert second != "bad id with spaces"
    assert len(second) == 32


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("to j@example.com", "to j***@example.com"),
        ("password=hunter2&x=1", "password=[redacted]&x=1"),
        ('{"api_key": "abc123"}', '{"api_key": "[redacted]"}'),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "secret whsec_[redacted]"),
        (
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "https://hooks.slack.com/services/[redacted]",
        ),
        (
            "https://discord.com/api/webhooks/123/abcDEF-ghi",
            "https://discord.com/api/webhooks/123/[redacted]",
        ),
        ("token xoxb-1234-5678-abcdef", "token xox-[redacted]"),
        ("key AKIAIOSFODNN7EXAMPLE", "key [aws-key-redacted]"),
        # Link tokens of any shape, the compressed ones (".eJy...") included.
        ('"GET /preferences/.eJyLVjI0:1xZd:k2o/ HTTP/1.1"', '"GET /preferences/[token]/ HTTP/1.1"'),
        ("/unsubscribe/abc?x=1", "/unsubscribe/[token]?x=1"),
        (
            "Referer: https://n.example/confirm/Wz:Q:y/",
            "Referer: https://n.example/confirm/[token]/",
        ),
    ],
)
def test_redact_removes_each_kind_of_secret(raw: str, expected: str) -> None:
    assert redact(raw) == expected
