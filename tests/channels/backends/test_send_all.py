"""send_all: a socket write in one system call when the kernel takes it all, sendall's
guarantee (every byte handed over, in order) when it does not."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from channels.backends.utils import send_all
from tests.channels.sns_peer import server_context


def _receive(sock: socket.socket, size: int, into: bytearray) -> None:
    """Read into ``into`` until ``size`` bytes have arrived or the peer closed."""
    while len(into) < size:
        chunk = sock.recv(65536)
        if not chunk:
            return
        into.extend(chunk)


def _reader(sock: socket.socket, size: int, into: bytearray, delay: float) -> threading.Thread:
    def read() -> None:
        time.sleep(delay)  # the writer finds the buffers full first
        _receive(sock, size, into)

    thread = threading.Thread(target=read)
    thread.start()
    return thread


@pytest.mark.parametrize("size", [150, 3_000_000], ids=["fits-at-once", "kernel-takes-part"])
def test_every_byte_arrives_in_order(size: int) -> None:
    writer, peer = socket.socketpair()
    writer.settimeout(5)  # as the SMTP and Redis sockets: non-blocking underneath
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    data = os.urandom(size)
    received = bytearray()
    thread = _reader(peer, size, received, delay=0.2)
    try:
        send_all(writer, data)
        thread.join(timeout=10)
    finally:
        writer.close()
        peer.close()

    assert bytes(received) == data


def test_a_closed_peer_raises_an_oserror_as_sendall_does() -> None:
    writer, peer = socket.socketpair()
    writer.settimeout(5)
    peer.close()
    try:
        with pytest.raises(OSError):
            send_all(writer, b"x" * 100)
    finally:
        writer.close()


def test_a_tls_socket_sends_its_bytes_encrypted(tmp_path: Path) -> None:
    """A TLS socket's bytes go through sendall: written raw with os.write, they would reach the
    peer as plain text in place of TLS records and its handshake-aware read would fail."""
    tls_server, _, ca_bundle = server_context(tmp_path, "127.0.0.1")
    client_context = ssl.create_default_context(cafile=str(ca_bundle))
    plain_writer, plain_peer = socket.socketpair()
    plain_writer.settimeout(5)
    plain_peer.settimeout(5)
    data = os.urandom(300_000)
    received = bytearray()

    def serve() -> None:
        with tls_server.wrap_socket(plain_peer, server_side=True) as tls_peer:
            _receive(tls_peer, len(data), received)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(plain_writer, server_hostname="127.0.0.1") as writer:
            send_all(writer, data)
            thread.join(timeout=10)
    finally:
        plain_peer.close()

    assert bytes(received) == data
