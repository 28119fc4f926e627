"""The SMTP backend reads the server's replies through ``_Replies`` (decision 0090) in place of
smtplib's BufferedReader: the same lines for the same bytes, whatever the limit smtplib asks
for and however the bytes arrive."""

from __future__ import annotations

import smtplib
import socket
import threading
import time

import pytest

from channels.backends.email_smtp import _Replies

CASES = {
    "one reply": [b"250 OK\r\n"],
    "a multiline reply in pieces": [b"250-first\r\n250-sec", b"ond\r\n", b"250 last\r\n"],
    "several replies at once": [b"250 a\r\n250 b\r\n354 go ahead\r\n"],
    # smtplib reads with readline(_MAXLINE + 1) and refuses a longer line ("Line too long").
    "a line over smtplib's limit": [b"250 " + b"x" * 9_000 + b"\r\n", b"250 next\r\n"],
    "a line over the limit in pieces": [b"250 " + b"y" * 5_000, b"y" * 5_000 + b"\r\n"],
    "closed without a newline": [b"421 closing"],
}


def _lines(reader_for: type | None, chunks: list[bytes], limit: int) -> list[bytes]:
    """The lines readline(limit) returns until the peer has closed, the peer writing
    ``chunks`` one at a time, a moment apart."""
    ours, peer = socket.socketpair()
    ours.settimeout(5)

    def write() -> None:
        for chunk in chunks:
            peer.sendall(chunk)
            time.sleep(0.02)
        peer.close()

    thread = threading.Thread(target=write)
    thread.start()
    reader = _Replies(ours) if reader_for is _Replies else ours.makefile("rb")
    lines = []
    try:
        while line := reader.readline(limit):
            lines.append(line)
    finally:
        thread.join(timeout=10)
        reader.close()
        ours.close()
    return lines


@pytest.mark.parametrize("limit", [-1, smtplib._MAXLINE + 1, 7])
@pytest.mark.parametrize("chunks", CASES.values(), ids=CASES.keys())
def test_the_same_lines_as_smtplibs_buffered_reader(chunks: list[bytes], limit: int) -> None:
    expected = _lines(None, chunks, limit)
    assert _lines(_Replies, chunks, limit) == expected
    if limit == smtplib._MAXLINE + 1 and any(len(c) > limit for c in chunks):
        assert any(len(line) == limit for line in expected)  # smtplib's cue: "Line too long"


def test_it_lets_the_journal_write_before_every_read_that_would_wait() -> None:
    ours, peer = socket.socketpair()
    ours.settimeout(5)
    reader = _Replies(ours)
    waits: list[int] = []
    reader.before_wait = lambda: waits.append(len(waits))
    try:
        peer.sendall(b"250 a\r\n250 b\r\n")
        assert reader.readline() == b"250 a\r\n"  # read from the socket: one wait
        assert reader.readline() == b"250 b\r\n"  # already in hand: no wait
        assert len(waits) == 1
        peer.sendall(b"250 c\r\n")
        assert reader.readline() == b"250 c\r\n"
        assert len(waits) == 2
    finally:
        ours.close()
        peer.close()
