"""Real local peers for the backends: moto's SES server (pytest-httpserver is a plugin)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

SES_REGION = "eu-west-1"
SENDER = "news@example.com"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server on loopback; yields its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def ses_endpoint(moto_server: str) -> Iterator[str]:
    """moto's SES, emptied, with the sender identity created (and so verified)."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=5)
    client = boto3.client(
        "sesv2",
        region_name=SES_REGION,
        endpoint_url=moto_server,
        aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
        aws_secret_access_key="moto-secret-key-not-real",
    )
    client.create_email_identity(EmailIdentity=SENDER)
    yield moto_server


def ses_sent_messages() -> list[Any]:
    """What moto's SES received (its raw messages), in order."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][SES_REGION].sent_messages)


def delayed(seconds: float, response: Response) -> Callable[[Request], Response]:
    """A handler answering ``response`` after ``seconds``: longer than the client's timeout."""

    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return response

    return handler


def wait_for_log(server: HTTPServer, count: int, timeout: float = 5.0) -> None:
    """Wait until the server has answered ``count`` requests (a delayed one answers late)."""
    deadline = time.monotonic() + timeout
    while len(server.log) < count and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nobody listens on: connection refused."""
    return f"http://127.0.0.1:{free_port()}/"


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server, threaded: a delayed answer must not hold up the next one."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()
