"""The API benchmark's load generator: wrk at a constant rate, coordinated omission corrected.

bench/api.py reports the API's p99 at half its peak from `constant_rate` (wrk with
bench/constant_rate.lua). These tests drive it against a small threaded HTTP server on loopback
that closes every connection, as gunicorn's sync workers do, and check the two promises: the
rate asked for is the rate sent, and a slow answer counts the wait of every request it held
back. CI installs wrk (`.ci/run`); elsewhere `make bench-tools` does.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "bench"))

from api import dockerfile_command, gunicorn_command
from constant_rate import ConstantRateRun, constant_rate, parse

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk: make bench-tools")

STALL_AFTER_S = 1.0
STALL_S = 0.4


class Server(ThreadingHTTPServer):
    # Connections come back all at once after a stall: a short backlog would drop SYNs.
    request_queue_size = 128
    daemon_threads = True
    stall_from: float | None = None
    stalled = False
    lock = threading.Lock()
    seen_headers: list[str]


class Handler(BaseHTTPRequestHandler):
    server: Server

    def do_GET(self) -> None:
        server = self.server
        server.seen_headers.append(self.headers.get("Authorization", ""))
        with server.lock:
            stall = (
                server.stall_from is not None
                and time.monotonic() >= server.stall_from
                and not server.stalled
            )
            server.stalled = server.stalled or stall
        if stall:
            time.sleep(STALL_S)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server(("127.0.0.1", 0), Handler)
    server.seen_headers = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def url(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


@needs_wrk
@pytest.mark.slow
def test_it_sends_the_rate_it_is_asked_for(server: Server) -> None:
    run = constant_rate(url(server), 100, 3, connections=4, headers={"Authorization": "Bearer k"})

    assert run.achieved == pytest.approx(100, rel=0.02)
    assert 270 <= run.requests <= 300
    assert run.errors == 0
    assert set(server.seen_headers) == {"Bearer k"}
    # A quick server: nothing waits for its turn.
    assert run.percentile(50) < 10


@needs_wrk
@pytest.mark.slow
def test_it_counts_the_wait_of_every_request_a_slow_answer_held_back(server: Server) -> None:
    # Two connections at 50/s: each sends every 40 ms. One answer takes 400 ms: its connection
    # owes about nine requests when it comes, sends them at once, and each one's latency runs
    # from its due time (about 360, 320, ... 40 ms), not from when it could finally be sent.
    server.stall_from = time.monotonic() + STALL_AFTER_S
    run = constant_rate(url(server), 50, 3, connections=2)

    assert server.stalled
    assert run.latencies_ms[-1] >= STALL_S * 1000 * 0.95
    held_back = [value for value in run.latencies_ms if value >= 100]
    # 400, 360, ..., 120 ms: eight. Measured from the moment of sending it would be one.
    assert 7 <= len(held_back) <= 20
    # The schedule caught up: the rate over the whole run is still the rate asked for.
    assert run.achieved == pytest.approx(50, rel=0.02)
    assert run.errors == 0


WRK_OUTPUT = """Running 1s test @ http://127.0.0.1:1/
  2 threads and 2 connections
  Socket errors: connect 1, read 2, write 0, timeout 3
Requests/sec:      4.00
constant-rate base 1000000.0
constant-rate thread 1500000.0 1 2000.0 1000.0
constant-rate thread 3000000.0 0 4000.0 3000.0
"""


def test_it_reads_latencies_errors_and_the_span_of_a_run() -> None:
    run = parse(WRK_OUTPUT, target=2.0)

    assert run == ConstantRateRun(
        target=2.0,
        latencies_ms=[1.0, 2.0, 3.0, 4.0],
        failures=1,
        socket_errors=6,
        seconds=2.0,
    )
    assert run.achieved == 2.0
    assert run.errors == 7
    assert run.percentile(50) == 2.0
    assert run.percentile(99) == 4.0
    assert run.percentile(99.9) == 4.0


def test_it_refuses_output_without_the_scripts_lines() -> None:
    with pytest.raises(ValueError, match="printed nothing"):
        parse("Running 1s test\nRequests/sec: 0.00\n", target=1.0)
    with pytest.raises(ValueError, match="no request was answered"):
        parse("constant-rate base 1.0\n", target=1.0).percentile(99)


def test_the_bench_starts_gunicorn_with_the_dockerfiles_command() -> None:
    image = dockerfile_command()
    assert image[0] == "gunicorn"
    assert "--config" in image  # the redacting logger (config.gunicorn_conf)
    expected = image[1:]
    expected[expected.index("--bind") + 1] = "127.0.0.1:8123"

    command = gunicorn_command(8123, workers=None)

    assert command[1:3] == ["-m", "gunicorn"]
    # Only the address changes, and no control socket is opened at a path shared by others.
    assert command[3:] == [*expected, "--no-control-socket"]
    two = gunicorn_command(8123, workers=2)
    assert two[two.index("--workers") + 1] == "2"
