"""send_all: a socket write in one system call when the kernel takes it all, sendall's
guarantee (every byte handed over, in order) when it does not."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from channels.backends.utils import send_all


def _reader(sock: socket.socket, size: int, into: bytearray, delay: float) -> threading.Thread:
    def read() -> None:
        time.sleep(delay)  # the writer finds the buffers full first
        while len(into) < size:
            chunk = sock.recv(65536)
            if not chunk:
                return
            into.extend(chunk)

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
