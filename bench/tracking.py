"""Benchmark: the open pixel and the click redirect under gunicorn on PostgreSQL, against a bare
Django view answering the same 1x1 GIF.

    python bench/tracking.py [--seconds 10] [--workers 2] [--connections 8] [--repeat 3]

Creates the database pub_tracking_bench (dropped and re-created) and a production-like
environment (config.settings.prod through bench.tracking_site.settings, which only adds the
bare view's URL, and REDIS_URL so that hits go through the Redis buffer as in production),
then one tracked delivery with one stored link. `wrk` (closed loop, --connections) hits,
alternating, --repeat times each: the bare view, the open pixel (signature checked, one RPUSH)
and the click (signature checked, the link from the process's cache, one RPUSH, 302). Each
one's best run is kept: requests/s, p50, p99. Every tracked request must have left one event
once the buffer is moved into the table.

Prints a Markdown table for docs/performance.md and whether the target holds (each tracking
URL >= 0.6 of the bare view's requests/s).
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api import environment as api_environment  # noqa: E402
from api import free_port, manage, start_gunicorn, wrk  # noqa: E402

DATABASE = "pub_tracking_bench"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
PYTHON = sys.executable
TARGET_RATIO = 0.6

SEED = """
from django.utils import timezone
from channels import tracking
from channels.models import Channel, Delivery, TrackedLink
from publishing import services
from publishing.models import Dispatch, Publication, Topic
from subscribers.models import Subscriber
topic = Topic.objects.create(name="News", slug="news")
publication = services.create_publication(services.PublicationInput(
    title="Tracked", slug="tracked", body="[A link](https://example.org/)", topics=[topic],
), by=None)
version = publication.history.latest()
channel = Channel.objects.create(name="Mail", kind="email_smtp", tracking=True,
    config={"host": "127.0.0.1", "port": 2525})
dispatch = Dispatch.objects.create(publication=publication, version=version)
reader = Subscriber.objects.create(email="reader@example.org", status="active")
delivery = Delivery.objects.create(dispatch=dispatch, channel=channel, subscriber=reader,
    recipient=reader.email, status="sent", sent_at=timezone.now(), next_attempt_at=timezone.now())
tracking.store_links(version.history_id, tracking.EMAIL, ["https://example.org/"])
print(tracking.open_url(delivery.pk).split("localhost", 1)[1])
ref = tracking.LinkRef(tracking.EMAIL, version.history_id)
print(tracking.click_url(delivery.pk, ref, 0).split("localhost", 1)[1])
"""


def environment() -> dict[str, str]:
    return {
        **api_environment(),
        "DJANGO_SETTINGS_MODULE": "bench.tracking_site.settings",
        "DATABASE_URL": DATABASE_URL,
    }


def prepare(env: dict[str, str]) -> tuple[str, str]:
    code = (
        "import psycopg; c = psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres',"
        f" autocommit=True); c.execute('DROP DATABASE IF EXISTS {DATABASE}');"
        f" c.execute('CREATE DATABASE {DATABASE}')"
    )
    subprocess.run([PYTHON, "-c", code], check=True)
    manage(env, "migrate", "--no-input")
    open_path, click_path = manage(env, "shell", "-c", SEED).strip().splitlines()[-2:]
    return open_path, click_path


def status_of(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers={"User-Agent": "bench"})
    response = connection.getresponse()
    response.read()
    header = "Location" if 300 <= response.status < 400 else "Content-Type"
    return response.status, response.getheader(header) or ""


def events(env: dict[str, str]) -> int:
    """Events in the table, once the buffer (Redis, as in production) has been moved."""
    code = (
        "from channels import tracking_buffer\n"
        "while tracking_buffer.move():\n    pass\n"
        "from channels.models import EngagementEvent; print(EngagementEvent.objects.count())"
    )
    return int(manage(env, "shell", "-c", code).strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per URL (best kept)")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    env = environment()
    open_path, click_path = prepare(env)
    port = free_port()
    server = start_gunicorn(env, port, options.workers)
    bare_path = "/bench/bare/pixel.gif"
    try:
        checks = {
            "bare": status_of(port, bare_path),
            "open": status_of(port, open_path),
            "click": status_of(port, click_path),
        }
        expected = {
            "bare": (200, "image/gif"),
            "open": (200, "image/gif"),
            "click": (302, "https://example.org/"),
        }
        if checks != expected:
            raise SystemExit(f"unexpected answers: {checks}")
        before = events(env)
        runs: dict[str, list[dict[str, float]]] = {"bare": [], "open": [], "click": []}
        for _ in range(options.repeat):
            for name, path in (("bare", bare_path), ("open", open_path), ("click", click_path)):
                runs[name].append(wrk(port, path, "-", options.seconds, options.connections))
        recorded = events(env) - before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    sent = sum(run["rps"] * options.seconds for name in ("open", "click") for run in runs[name])
    best = {name: max(results, key=lambda run: run["rps"]) for name, results in runs.items()}
    load = os.getloadavg()[0]
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')} UTC, load average {load:.1f}, "
        f"gunicorn {options.workers} sync workers, wrk {options.connections} connections, "
        f"best of {options.repeat} runs of {options.seconds} s\n"
    )
    print("| URL | req/s | p50 / p99 (ms) | / bare |")
    print("|---|---:|---:|---:|")
    ok = True
    for name in ("bare", "open", "click"):
        run = best[name]
        ratio = run["rps"] / best["bare"]["rps"]
        if name != "bare":
            ok = ok and ratio >= TARGET_RATIO
        print(f"| {name} | {run['rps']:.0f} | {run['p50']:.1f} / {run['p99']:.1f} | {ratio:.2f} |")
    # wrk's request count is rounded from its rate: allow 1% either way.
    print(f"\nEvents recorded: {recorded} for about {sent:.0f} tracked requests")
    if abs(recorded - sent) > sent * 0.01:
        ok = False
        print("Events and tracked requests do not match.")
    print(f"Target (each tracking URL >= {TARGET_RATIO} of bare): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
