"""Benchmark: the REST API under gunicorn on PostgreSQL, against a bare Django view.

    python bench/api.py [--seconds 10] [--workers 2] [--connections 8]

Creates the database pub_api_bench (dropped and re-created), a production-like environment
(config.settings.prod through bench.api_site.settings, which only adds the bare view's URLs;
Redis cache for throttles), 50 publications with 2 topics each and a publications:read key.
Then, for the publication list (50 items), the publication detail and the bare view returning
the same JSON from one query:

1. peak: `wrk` (closed loop, --connections) for --seconds, --repeat times alternating API and
   bare view, keeping each one's best run: requests/s, p50, p99;
2. paced: an open-loop Python generator at half the API's peak rate for --seconds, latency
   measured from each request's scheduled time (no coordinated omission): p50, p99.

Prints a Markdown table for docs/performance.md and whether the targets hold
(API >= 0.7 of the bare view's throughput; p99 < 25 ms at half the peak rate).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "pub_api_bench"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
PYTHON = sys.executable
TARGET_RATIO = 0.7
TARGET_P99_MS = 25.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment() -> dict[str, str]:
    """A production-like environment: real secret, hosts, PostgreSQL, Redis, no TLS redirect
    (the load balancer terminates TLS), warnings-only logs."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_site.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": "https://localhost",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": "redis://127.0.0.1:6379/7",
        "SECURE_SSL_REDIRECT": "false",
        "FIELD_ENCRYPTION_KEYS": "bKSw1Vh5bRjMU2gm9z0Pj9Y0bHfC6nJ4m8lHq1pXkqs=",
        "LOG_LEVEL": "WARNING",
        # The throttles still run and count in Redis (one pipelined round trip with the key's
        # snapshot, as in production), but never refuse the load generator.
        "API_RATE_PER_KEY": "100000/s",
        "API_RATE_PER_IP": "100000/s",
        "PYTHONPATH": str(ROOT),
    }


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if result.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


SEED = """
from django.contrib.auth import get_user_model
from publishing.models import Publication, Topic
from publishing import services
topics = [Topic.objects.create(name=f"Topic {i}", slug=f"topic-{i}") for i in range(5)]
for i in range(50):
    services.create_publication(services.PublicationInput(
        title=f"Publication {i}", slug=f"publication-{i}", summary="A summary " * 10,
        body="# Title\\n\\n" + "Some text. " * 300, topics=[topics[i % 5], topics[(i + 1) % 5]],
    ), by=None)
print(Publication.objects.order_by("pk").first().pk)
"""


def prepare(env: dict[str, str]) -> tuple[str, int]:
    admin = {**env, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres"}
    code = (
        "import psycopg; c = psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres',"
        f" autocommit=True); c.execute('DROP DATABASE IF EXISTS {DATABASE}');"
        f" c.execute('CREATE DATABASE {DATABASE}')"
    )
    subprocess.run([PYTHON, "-c", code], env=admin, check=True)
    subprocess.run(["redis-cli", "-n", "7", "FLUSHDB"], check=False, capture_output=True)
    manage(env, "migrate", "--no-input")
    first_id = int(manage(env, "shell", "-c", SEED).strip().splitlines()[-1])
    key = manage(env, "create_api_key", "--name=bench", "--scopes=publications:read").strip()
    return key, first_id


def start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "gunicorn",
            "config.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            return process
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def wrk(port: int, path: str, key: str, seconds: int, connections: int) -> dict[str, float]:
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {key}",
            f"http://127.0.0.1:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, flags=re.M)
        if not match:
            raise SystemExit(f"cannot read wrk's output:\n{out}")
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    if "Non-2xx" in out:
        raise SystemExit(f"errors during the run:\n{out}")
    return {"rps": rps, "p50": latency("50"), "p99": latency("99")}


def paced(port: int, path: str, key: str, rate: float, seconds: int) -> dict[str, float]:
    """Open loop: request i is due at start + i / rate; its latency runs from that time."""
    threads = 16
    latencies: list[float] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    total = int(rate * seconds)
    errors = 0

    def worker(offset: int) -> None:
        nonlocal errors
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        for index in range(offset, total, threads):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                errors += 1
            mine.append((time.perf_counter() - due) * 1000)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise SystemExit(f"{errors} errors in the paced run of {path}")
    latencies.sort()
    return {
        "rate": rate,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per endpoint (best kept)")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    env = environment()
    key, first_id = prepare(env)
    port = free_port()
    server = start_gunicorn(env, port, options.workers)
    pairs = [
        ("list (50 items)", "/api/v1/publications/?page_size=50", "/bench/bare/publications/"),
        (
            "detail",
            f"/api/v1/publications/{first_id}/",
            f"/bench/bare/publications/{first_id}/",
        ),
    ]
    rows = []
    ok = True
    try:
        auth = {"Authorization": f"Bearer {key}"}
        for name, api_path, bare_path in pairs:
            api_status, api_body = fetch(port, api_path, auth)
            _, bare_body = fetch(port, bare_path, {})
            if api_status != 200 or json.loads(api_body) != json.loads(bare_body):
                raise SystemExit(f"{name}: the bare view's JSON differs from the API's")
            # Alternate the two, several times, and keep each one's best run: on a shared
            # machine the best run is the one least disturbed by other work.
            bare_runs, api_runs = [], []
            for _ in range(options.repeat):
                bare_runs.append(wrk(port, bare_path, key, options.seconds, options.connections))
                api_runs.append(wrk(port, api_path, key, options.seconds, options.connections))
            bare = max(bare_runs, key=lambda run: run["rps"])
            api = max(api_runs, key=lambda run: run["rps"])
            calm = paced(port, api_path, key, api["rps"] / 2, options.seconds)
            ratio = api["rps"] / bare["rps"]
            ok = ok and ratio >= TARGET_RATIO and calm["p99"] < TARGET_P99_MS
            rows.append((name, api, bare, ratio, calm))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    load = os.getloadavg()[0]
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')} UTC, load average {load:.1f}, "
        f"gunicorn {options.workers} sync workers, wrk {options.connections} connections, "
        f"best of {options.repeat} runs of {options.seconds} s\n"
    )
    print(
        "| Endpoint | API req/s | API p50 / p99 (ms) | bare req/s | bare p50 / p99 (ms) "
        "| API / bare | paced at | paced p50 / p99 (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, api, bare, ratio, calm in rows:
        print(
            f"| {name} | {api['rps']:.0f} | {api['p50']:.1f} / {api['p99']:.1f} | "
            f"{bare['rps']:.0f} | {bare['p50']:.1f} / {bare['p99']:.1f} | {ratio:.2f} | "
            f"{calm['rate']:.0f}/s | {calm['p50']:.1f} / {calm['p99']:.1f} |"
        )
    print(
        f"\nTargets (API >= {TARGET_RATIO} of bare, paced p99 < {TARGET_P99_MS} ms): "
        f"{'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
