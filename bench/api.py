"""Benchmark: the REST API under gunicorn on PostgreSQL, against a bare Django view.

    make bench-tools   # wrk, from Debian's packages
    python bench/api.py [--seconds 10] [--repeat 3] [--paced-seconds 60] [--workers N]
                        [--database pub_api_bench] [--redis-db 7]

Creates the database (dropped and re-created), a production-like environment
(config.settings.prod through bench.api_site.settings, which only adds the bare view's URLs;
Redis cache for throttles), 50 publications with 2 topics each and a publications:read key, and
starts gunicorn with the command line of the Dockerfile's CMD (its config module, worker count
and access log; only the address changes). Then, for the publication list (50 items), the
publication detail and the bare view returning the same JSON from one query:

1. peak: `wrk` unpaced (closed loop, --connections) for --seconds, --repeat times alternating
   API and bare view, keeping each one's best run: requests/s, p50, p99;
2. paced: wrk at a constant rate of half the API's peak for --paced-seconds
   (bench/constant_rate.py and .lua): each latency counted from the moment its request was
   due, so coordinated omission is corrected; p50, p99, p99.9, the rate achieved, errors, the
   load average before and after, and the CPU other work on the machine used meanwhile (in
   cores: the machine's busy time from /proc/stat less wrk's, gunicorn's and its PostgreSQL
   backends').

Prints a Markdown table for docs/performance.md and whether the targets hold
(API >= 0.7 of the bare view's throughput; p99 < 25 ms at half the peak rate, at that rate).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from constant_rate import ConstantRateRun, constant_rate, wrk_binary  # noqa: E402

DATABASE = "pub_api_bench"
REDIS_DB = 7
PYTHON = sys.executable
TARGET_RATIO = 0.7
TARGET_P99_MS = 25.0
# The achieved rate may fall short of the target by the requests still in flight at the end.
RATE_TOLERANCE = 0.01


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(database: str = DATABASE, redis_db: int = REDIS_DB) -> dict[str, str]:
    """A production-like environment: real secret, hosts, PostgreSQL, Redis, no TLS redirect
    (the load balancer terminates TLS), warnings-only logs."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.api_site.settings",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SITE_URL": "https://localhost",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
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


def prepare(env: dict[str, str], database: str, redis_db: int) -> tuple[str, int]:
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", database):
        raise SystemExit(f"--database: {database!r} is not a plain lower-case name")
    admin = {**env, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres"}
    code = (
        "import psycopg; c = psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres',"
        f" autocommit=True); c.execute('DROP DATABASE IF EXISTS {database}');"
        f" c.execute('CREATE DATABASE {database}')"
    )
    subprocess.run([PYTHON, "-c", code], env=admin, check=True)
    subprocess.run(["redis-cli", "-n", str(redis_db), "FLUSHDB"], check=False, capture_output=True)
    manage(env, "migrate", "--no-input")
    first_id = int(manage(env, "shell", "-c", SEED).strip().splitlines()[-1])
    key = manage(env, "create_api_key", "--name=bench", "--scopes=publications:read").strip()
    return key, first_id


def dockerfile_command() -> list[str]:
    """The Dockerfile's CMD (exec form), so the bench runs the server as the image does."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD ["):
            command: list[str] = json.loads(line.removeprefix("CMD "))
            return command
    raise SystemExit("Dockerfile: no CMD [...] line")


def gunicorn_command(port: int, workers: int | None) -> list[str]:
    """The Dockerfile's command with this machine's interpreter, a loopback address and, if
    given, another worker count; raises SystemExit if the CMD no longer runs gunicorn."""
    command = dockerfile_command()
    if command[0] != "gunicorn":
        raise SystemExit(f"the Dockerfile's CMD does not start gunicorn: {command}")
    arguments = command[1:]
    for option, value in (("--bind", f"127.0.0.1:{port}"), ("--workers", str(workers))):
        if option == "--workers" and workers is None:
            continue
        if option in arguments:
            arguments[arguments.index(option) + 1] = value
        else:
            arguments += [option, value]
    # Other gunicorns on this machine (tests, other benches) would share the default control
    # socket path; the bench's needs none.
    return [PYTHON, "-m", "gunicorn", *arguments, "--no-control-socket"]


def wait_for(port: int) -> None:
    for _ in range(100):
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start")


def start_gunicorn(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    """A bare gunicorn (no config module, no access log), as bench/tracking.py measures."""
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
    wait_for(port)
    return process


def start_product(env: dict[str, str], command: list[str], port: int) -> subprocess.Popen[bytes]:
    """gunicorn as the image starts it (`gunicorn_command`). Its access log goes to stdout as
    in the image; here stdout is discarded, but each line is still formatted and redacted."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    wait_for(port)
    return process


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def wrk(port: int, path: str, key: str, seconds: int, connections: int) -> dict[str, float]:
    result = subprocess.run(
        [
            wrk_binary(),
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


TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / TICKS


def process_seconds(pids: list[int]) -> float:
    """CPU seconds (user and system) the given live processes have used."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def bench_pids(server: subprocess.Popen[bytes], database: str) -> list[int]:
    """gunicorn's processes (its process group) and the PostgreSQL backends on the database."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == server.pid:
                pids.append(int(entry.name))
    rows = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-Atc",
            f"SELECT pid FROM pg_stat_activity WHERE datname = '{database}'",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return pids + [int(row) for row in rows if row.isdigit()]


@dataclass(frozen=True)
class Paced:
    """A constant-rate run and what the machine did meanwhile."""

    run: ConstantRateRun
    load_before: float
    load_after: float
    # Cores' worth of CPU used by other work (neither wrk, gunicorn nor its database backends).
    others: float


def paced(
    server: subprocess.Popen[bytes],
    database: str,
    port: int,
    path: str,
    key: str,
    rate: float,
    seconds: int,
    connections: int,
) -> Paced:
    """The constant-rate run, with the 1-minute load average before and after it and the CPU
    the rest of the machine used during it."""
    before = os.getloadavg()[0]
    pids = bench_pids(server, database)
    start = time.monotonic()
    busy, ours = machine_busy_seconds(), process_seconds(pids)
    wrk_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = constant_rate(
        f"http://127.0.0.1:{port}{path}",
        rate,
        seconds,
        connections=connections,
        headers={"Authorization": f"Bearer {key}"},
    )
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    ours = process_seconds(pids) - ours + spent
    others = (machine_busy_seconds() - busy - ours) / (time.monotonic() - start)
    return Paced(run, before, os.getloadavg()[0], max(0.0, others))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--seconds", type=int, default=10, help="each unpaced wrk run")
    parser.add_argument("--workers", type=int, default=None, help="default: the Dockerfile's")
    parser.add_argument("--connections", type=int, default=8, help="unpaced wrk connections")
    parser.add_argument("--repeat", type=int, default=3, help="wrk runs per endpoint (best kept)")
    parser.add_argument("--paced-seconds", type=int, default=60)
    parser.add_argument(
        "--paced-connections", type=int, default=16, help="connections of the constant-rate run"
    )
    parser.add_argument("--database", default=DATABASE, help="dropped and re-created")
    parser.add_argument("--redis-db", type=int, default=REDIS_DB, help="flushed")
    options = parser.parse_args()
    wrk_binary()
    env = environment(options.database, options.redis_db)
    # The image serves collected files; the API needs none, but WhiteNoise wants the folder.
    env["STATIC_ROOT"] = tempfile.mkdtemp(prefix="api-bench-static-")
    key, first_id = prepare(env, options.database, options.redis_db)
    port = free_port()
    command = gunicorn_command(port, options.workers)
    server = start_product(env, command, port)
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
            calm = paced(
                server,
                options.database,
                port,
                api_path,
                key,
                api["rps"] / 2,
                options.paced_seconds,
                options.paced_connections,
            )
            ratio = api["rps"] / bare["rps"]
            run = calm.run
            held = run.achieved >= run.target * (1 - RATE_TOLERANCE)
            ok = ok and ratio >= TARGET_RATIO and held and not run.errors
            ok = ok and run.percentile(99) < TARGET_P99_MS
            rows.append((name, api, bare, ratio, calm))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    workers = command[command.index("--workers") + 1] if "--workers" in command else "?"
    print(
        f"\n{time.strftime('%Y-%m-%d %H:%M')} UTC, load average {os.getloadavg()[0]:.1f}, "
        f"gunicorn {workers} sync workers as the Dockerfile starts it, unpaced wrk "
        f"{options.connections} connections, best of {options.repeat} runs of "
        f"{options.seconds} s; paced: wrk at a constant rate over {options.paced_connections} "
        f"connections for {options.paced_seconds} s, latency from each request's due time\n"
    )
    print(f"    {' '.join(Path(part).name if part == PYTHON else part for part in command)}\n")
    print(
        "| Endpoint | API req/s | API p50 / p99 (ms) | bare req/s | bare p50 / p99 (ms) "
        "| API / bare | paced target | achieved | paced p50 / p99 / p99.9 (ms) | errors "
        "| load before / after | other work (cores) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, api, bare, ratio, calm in rows:
        run = calm.run
        print(
            f"| {name} | {api['rps']:.0f} | {api['p50']:.1f} / {api['p99']:.1f} | "
            f"{bare['rps']:.0f} | {bare['p50']:.1f} / {bare['p99']:.1f} | {ratio:.2f} | "
            f"{run.target:.1f}/s | {run.achieved:.1f}/s | {run.percentile(50):.1f} / "
            f"{run.percentile(99):.1f} / {run.percentile(99.9):.1f} | {run.errors} | "
            f"{calm.load_before:.1f} / {calm.load_after:.1f} | {calm.others:.2f} |"
        )
    print(
        f"\nTargets (API >= {TARGET_RATIO} of bare; at half the peak, the rate held within "
        f"{RATE_TOLERANCE:.0%}, no error and p99 < {TARGET_P99_MS} ms): "
        f"{'met' if ok else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
