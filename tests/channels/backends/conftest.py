"""Real local peers for the backends: moto's SES server, a raw socket peer that drops the
connection (pytest-httpserver is a plugin)."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

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


@pytest.fixture
def full_backlog_url() -> Iterator[str]:
    """A loopback URL whose listener never accepts and has a full queue: connect times out."""
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port: int = listener.getsockname()[1]
        # Linux queues one connection past a backlog of 0, then drops further SYNs.
        filler.connect(("127.0.0.1", port))
        yield f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def make_httpserver() -> Iterator[HTTPServer]:
    """pytest-httpserver's server, threaded: a delayed answer must not hold up the next one."""
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


#: What a RawPeer does with a connection: see its docstring.
PeerMove = Literal["close", "reset", "truncate", "stall"]
#: Half of a 200 answer: the headers promise 100 bytes of body, 9 come.
TRUNCATED_ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ok": tr'
)


class RawPeer:
    """An HTTP peer on a loopback socket, for what pytest-httpserver cannot do.

    With ``close``, ``reset`` or ``truncate`` it reads each request whole (headers and
    Content-Length body, kept in ``received``), then closes the connection without a word,
    resets it (RST), or sends half an answer and closes: the request was sent, no full answer
    came. With ``stall`` it accepts and never reads: a large request fills the socket buffers
    and the client's write times out before the request is sent.
    """

    def __init__(self, move: PeerMove) -> None:
        self.move = move
        self.received: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url_for(self, path: str) -> str:
        port: int = self._listener.getsockname()[1]
        return f"http://127.0.0.1:{port}{path}"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self.move == "stall":
                self._held.append(conn)
                continue
            with conn:
                conn.settimeout(5)
                self.received.append(_read_request(conn))
                if self.move == "reset":
                    # Linger on, zero seconds: close() sends RST instead of FIN.
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif self.move == "truncate":
                    conn.sendall(TRUNCATED_ANSWER)


def _read_request(conn: socket.socket) -> bytes:
    """One HTTP request, headers and Content-Length body, read whole from ``conn``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def raw_peer() -> Iterator[Callable[[PeerMove], RawPeer]]:
    """Start RawPeers on loopback: ``raw_peer("close")``; all stopped after the test."""
    peers: list[RawPeer] = []

    def start(move: PeerMove) -> RawPeer:
        peer = RawPeer(move)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.stop()


def request_body(raw: bytes) -> bytes:
    """The body of a raw request RawPeer received."""
    return raw.partition(b"\r\n\r\n")[2]


def request_headers(raw: bytes) -> dict[str, str]:
    """The headers of a raw request RawPeer received, names lowercased."""
    lines = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
