"""Benchmark: delivery at speed, each figure against its peer or ceiling in the same run.

    createdb -h 127.0.0.1 -U postgres pub_speed_bench     # the script creates it if missing
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pub_speed_bench \\
        python bench/delivery.py [--fanout 200000] [--emails 20000] [--ses 3000] [--rate 500]
    ... bench/delivery.py --only scale [--sizes 20000,200000,1000000] [--workers 2] \\
        [--samples 3] [--newsletter-emails 5000] [--redis-url redis://127.0.0.1:6379/12]

1. fan-out: plan_dispatch of --fanout subscribers vs a raw INSERT ... SELECT of as many rows
   into the same indexed table;
2. SMTP end to end: publish to every delivery settled, through real qcluster workers, into
   Postfix's smtp-sink (fetched into var/bench/postfix with apt-get download + dpkg -x when
   missing), vs a raw smtplib loop of pre-rendered 5 KB messages over the same number of
   connections, vs django-newsletter 1.2 (in its own virtualenv under var/bench/, its own
   Django project and database, delays set to zero) into the same sink;
3. SES end to end through workers against moto's server vs a raw boto3 send_email loop;
4. SQL statements per delivered message (an execute_wrapper around an in-process run) and the
   workers' peak memory (VmHWM of every qcluster process);
5. rate-limit precision: a channel limited to --rate messages/s against an SMTP peer that
   refuses (421) anything above that rate;
6. events (``--only events``, --event-emails): SMTP end to end with no event endpoint, then
   with an endpoint subscribed to every delivery event (delivery.sent for each message, and
   dispatch.completed) on a local HTTP receiver, alternating off/on/on/off... (--event-pairs)
   in one run: the SMTP ratio of each side's median against the raw smtplib loop, and
   events-on over events-off;
7. scale (``--only scale``, not among the default parts; issue 18), the product under
   PRODUCTION settings. The qcluster runs config.settings.prod with DEBUG off, REDIS_URL
   --redis-url (default Redis database 12: the cache and the sent journal in Redis),
   DATABASE_CONN_MAX_AGE 60 (persistent connections), a SECRET_KEY and a Fernet key generated
   for the run, ALLOWED_HOSTS and an https SITE_URL: what check_production_environment
   demands. It starts through bench/cluster_probe.py, which counts the SQL statements of every
   process of the cluster and has each report its role and peak memory. The bench's own
   process stays on config.settings.test: it creates the data, publishes (services.publish;
   the cluster runs the fan-out and the sending) and watches.
   For each of --sizes (default 20000,200000,1000000; the largest population is created once
   in SQL, INSERT ... SELECT generate_series, and kept for later runs; the first N subscribe
   to each run's topic), one publish through --workers workers (default 2) into smtp-sink,
   after a reset, VACUUM ANALYZE and CHECKPOINT: the rate (publish -> every delivery settled),
   every process's peak memory (VmHWM, by role) against the 20,000 run's, SQL statements per
   message (the cluster's, between a snapshot just before publishing and one once settled),
   WAL bytes per message (pg_current_wal_lsn before and after; the server's other databases
   write WAL too: the run says whether they wrote rows meanwhile), the load average.
   Then the ceilings at --ceiling-emails (20000), sampled --samples times (3), the side that
   runs first alternating (ours first, then the peers first, ...): the raw smtplib loop, a raw
   client pipelining MAIL/RCPT/DATA across messages (RFC 2920) over as many connections with
   the same bytes, and django-newsletter with --newsletter-emails (5000; it runs at about
   200/s); each ratio as its median, min and max.

Prints every figure and ratio; docs/performance.md records them with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"
POSTFIX = VAR / "postfix"
NEWSLETTER_VENV = VAR / "newsletter-venv"
NEWSLETTER_PROJECT = VAR / "newsletter-project"
NEWSLETTER_SCHEMA = "newsletter_bench"
WORKERS = 2
TARGETS = {
    "fanout": 0.5,
    "smtp_vs_raw": 0.5,
    "smtp_vs_newsletter": 10.0,
    "ses_vs_raw": 0.7,
    "statements": 0.1,
    "peak_mb": 150.0,
    "rate_share": 0.97,
    "throttled": 0.005,
    "events_on_vs_off": 0.9,
    # The scale part (issue 18): rate at the largest size over the 20,000 one; each role's
    # peak memory over its peak at 20,000 (the bench's reading of "flat"); the ceilings.
    "scale_rate": 0.8,
    "scale_memory": 1.1,
    "scale_statements": 0.02,
    "scale_vs_raw": 0.7,
    "scale_vs_pipelined": 0.3,
    "scale_vs_newsletter": 20.0,
}
QUOTED_NEWSLETTER_RATE = 206.0


def say(text: str) -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def database_url() -> str:
    return os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pub_speed_bench")


def ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def ensure_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')


def setup_django() -> None:
    os.environ["DATABASE_URL"] = database_url()
    ensure_database(os.environ["DATABASE_URL"])
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("TEST_QUIET_LOGGING", "1")
    os.environ["Q_SYNC"] = "false"
    # Production requires REDIS_URL, so its sent journal (decision 0039) lives in Redis: measure
    # that, not the development fallback (a folder of files).
    os.environ.setdefault("DELIVERY_JOURNAL_URL", "redis://127.0.0.1:6379/15")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- Data -----------------------------------------------------------------------------------


def reset(*, keep_subscribers: bool = False) -> None:
    """Empty what a run writes; ``keep_subscribers`` keeps the subscribers (the scale part
    creates its population once) but not their subscriptions."""
    from django.db import connection

    subscribers = "" if keep_subscribers else " subscribers_subscriber,"
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE channels_delivery, channels_sendstat, channels_ratebucket, channels_channel,"
            " channels_channel_topics, publishing_dispatch, subscribers_subscription,"
            " publishing_topic, publishing_historicaltopic, publishing_publication,"
            " publishing_publication_topics, publishing_historicalpublication,"
            " publishing_historicalpublication_topics,"
            f"{subscribers} django_q_ormq, django_q_task, events_event"
            " RESTART IDENTITY CASCADE"
        )


def make_subscribers(count: int, topics: list[Any], *, first: int = 0) -> None:
    """``count`` confirmed subscribers, each subscribed (immediately) to every topic given."""
    import uuid

    from django.utils import timezone

    from subscribers.models import Subscriber, Subscription, email_hash

    now = timezone.now()
    for start in range(first, first + count, 10_000):
        people = [
            Subscriber(
                email=f"reader{i}@example.com",
                email_hash=email_hash(f"reader{i}@example.com"),
                name=f"Reader {i}",
                status=Subscriber.Status.ACTIVE,
                confirmed_at=now,
                token_key=uuid.uuid4(),
            )
            for i in range(start, min(start + 10_000, first + count))
        ]
        created = Subscriber.objects.bulk_create(people)
        Subscription.objects.bulk_create(
            Subscription(subscriber=p, topic=t) for p in created for t in topics
        )


def subscribe_first(count: int, topic: Any) -> None:
    from subscribers.models import Subscriber, Subscription

    ids = Subscriber.objects.order_by("pk").values_list("pk", flat=True)[:count]
    Subscription.objects.bulk_create(Subscription(subscriber_id=i, topic=topic) for i in ids)


BODY = "\n\n".join(
    textwrap.fill(
        f"Paragraph {n}: the delivery engine claims its work per batch, renders each message "
        "from bytes encoded once per version, and records every outcome in one statement. " * 3,
        90,
    )
    for n in range(2)  # with the HTML part and headers, each email is about 5 KB, as the raw ones
)


def make_publication(slug: str, topic: Any) -> Any:
    from publishing import services
    from publishing.models import Publication

    return services.create_publication(
        services.PublicationInput(
            title=f"Bench {slug}",
            slug=slug,
            summary="A benchmark issue.",
            body=BODY,
            topics=[topic],
        ),
        by=None,
    ) or Publication.objects.get(slug=slug)


def make_dispatch(slug: str, topic: Any) -> Any:
    """A dispatch of a new publication without the publish hook (fan-out is timed alone)."""
    from django.utils import timezone

    from publishing.models import Dispatch, Publication

    publication = make_publication(slug, topic)
    Publication.objects.filter(pk=publication.pk).update(
        status=Publication.Status.PUBLISHED, published_at=timezone.now()
    )
    return Dispatch.objects.create(publication=publication, version=publication.history.latest())


def clear_queue() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_q_ormq, django_q_task")


# --- 1. Fan-out -----------------------------------------------------------------------------


def bench_fanout(count: int) -> dict[str, float]:
    from django.db import connection, transaction

    from channels.engine import fanout
    from channels.models import Channel, Delivery
    from publishing.models import Topic

    say(f"\n== Fan-out of {count:,} subscribers ==")
    reset()
    topic = Topic.objects.create(name="Fan-out", slug="fanout")
    make_subscribers(count, [topic])
    Channel.objects.create(
        name="Sink", kind="email_smtp", is_default_email=True, config={"host": "127.0.0.1"}
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    ours: list[float] = []
    raw: list[float] = []
    for round_ in range(2):
        dispatch = make_dispatch(f"fanout-{round_}", topic)
        started = time.perf_counter()
        created = fanout.plan_dispatch(dispatch.pk)
        ours.append(time.perf_counter() - started)
        if created != count:
            raise RuntimeError(f"fan-out created {created}, expected {count}")
        Delivery.objects.filter(dispatch=dispatch).delete()
        clear_queue()

        dispatch = make_dispatch(f"raw-{round_}", topic)
        started = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                """
                INSERT INTO channels_delivery (kind, dispatch_id, channel_id, subscriber_id,
                    recipient, priority, status, attempts, next_attempt_at, last_error,
                    provider_message_id, created_at, updated_at)
                SELECT 'subscriber', %s, c.id, s.id, '', 100, 'queued', 0, now(), '', '',
                    now(), now()
                FROM subscribers_subscriber s CROSS JOIN
                    (SELECT id FROM channels_channel LIMIT 1) c
                ON CONFLICT DO NOTHING
                """,
                [dispatch.pk],
            )
            if cursor.rowcount != count:
                raise RuntimeError(f"raw insert wrote {cursor.rowcount}")
        raw.append(time.perf_counter() - started)
        Delivery.objects.filter(dispatch=dispatch).delete()
    best_ours, best_raw = min(ours), min(raw)
    result = {
        "rows": count,
        "ours_s": best_ours,
        "raw_s": best_raw,
        "ours_rows_s": count / best_ours,
        "raw_rows_s": count / best_raw,
    }
    result["ratio"] = result["ours_rows_s"] / result["raw_rows_s"]
    say(
        f"plan_dispatch      {result['ours_rows_s']:>10,.0f} rows/s  ({best_ours:.2f} s; runs "
        + ", ".join(f"{t:.2f}" for t in ours)
        + ")"
    )
    say(
        f"raw INSERT..SELECT {result['raw_rows_s']:>10,.0f} rows/s  ({best_raw:.2f} s; runs "
        + ", ".join(f"{t:.2f}" for t in raw)
        + ")"
    )
    verdict("fan-out / raw INSERT ... SELECT", result["ratio"], TARGETS["fanout"], higher=True)
    return result


def verdict(name: str, value: float, target: float, *, higher: bool, digits: int = 3) -> None:
    met = value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    say(f"  {name}: {value:.{digits}f} (target {sign} {target:g}): {'MET' if met else 'MISSED'}")


# --- Peers ----------------------------------------------------------------------------------


def ensure_smtp_sink() -> Path:
    binary = POSTFIX / "usr" / "sbin" / "smtp-sink"
    if binary.exists():
        return binary
    say("Fetching Postfix's smtp-sink (apt-get download postfix; dpkg -x) ...")
    POSTFIX.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "postfix"], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("postfix_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(POSTFIX)], check=True)
    return binary


class SmtpSinkProcess:
    """Postfix's smtp-sink on a free port, counting the messages it accepted (-c)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.binary = ensure_smtp_sink()
        self.out = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the sink)
            prefix="smtp-sink-", suffix=".log", delete=False
        )
        env = {**os.environ, "LD_LIBRARY_PATH": str(POSTFIX / "usr" / "lib" / "postfix")}
        self.process = subprocess.Popen(
            [str(self.binary), "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def received(self) -> int:
        # smtp-sink -c rewrites its counters after every message: the log grows by about 40
        # bytes a message (40 MB after a run at every size), so only its end is read.
        with open(self.out.name, "rb") as log:
            log.seek(max(os.fstat(log.fileno()).st_size - 4096, 0))
            text = log.read().decode(errors="replace")
        counts = [part for part in text.replace("\r", "\n").split() if part.startswith("mesg=")]
        return int(counts[-1].split("=")[1]) if counts else 0

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=5)
        os.unlink(self.out.name)


def sink_channel(sink: SmtpSinkProcess) -> Any:
    """The default email channel every part sends through: smtp-sink, batches of 500."""
    from channels.models import Channel

    return Channel.objects.create(
        name="smtp-sink",
        kind="email_smtp",
        is_default_email=True,
        batch_size=500,
        config={"host": "127.0.0.1", "port": sink.port, "timeout": 30},
    )


class Cluster:
    """A real qcluster (WORKERS worker processes), its peak memory read from /proc."""

    def __init__(self, **env: str) -> None:
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the cluster)
            prefix="qcluster-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env={
                **os.environ,
                "Q_SYNC": "false",
                "Q_WORKERS": str(WORKERS),
                "LOG_LEVEL": "WARNING",
                "LOG_FORMAT": "text",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.peaks: dict[int, float] = {}
        time.sleep(3)  # the cluster forks its workers and starts polling

    def sample_memory(self) -> None:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                stat = (proc / "stat").read_text()
                pgid = int(stat.rsplit(")", 1)[1].split()[2])
                if pgid != self.process.pid:
                    continue
                for line in (proc / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peaks[int(proc.name)] = int(line.split()[1]) / 1024
            except (OSError, ValueError, IndexError):
                continue

    def stop(self) -> float:
        """Stop the cluster; returns the largest peak RSS (MB) of any of its processes."""
        self.sample_memory()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
        os.unlink(self.log.name)
        return max(self.peaks.values(), default=0.0)


@contextmanager
def cluster(**env: str) -> Iterator[Cluster]:
    running = Cluster(**env)
    try:
        yield running
    finally:
        running.peak = running.stop()  # type: ignore[attr-defined]


def wait_settled(dispatch_id: int, on_poll: Callable[[], None], timeout: float = 900) -> None:
    from publishing.models import Dispatch

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Dispatch.objects.filter(pk=dispatch_id, status=Dispatch.Status.DONE).exists():
            return
        on_poll()
        time.sleep(0.05)
    raise TimeoutError(f"dispatch {dispatch_id} not settled within {timeout} s")


def publish_and_wait(slug: str, topic: Any, running: Cluster) -> tuple[float, int]:
    """Publish through publishing.services.publish; seconds until every delivery settled."""
    from django.db import transaction

    from channels.models import Delivery
    from publishing import services

    publication = make_publication(slug, topic)
    samples = [0]

    def poll() -> None:
        samples[0] += 1
        if samples[0] % 20 == 0:
            running.sample_memory()

    started = time.perf_counter()
    with transaction.atomic():
        dispatch = services.publish(publication, by=None)
    wait_settled(dispatch.pk, poll)
    elapsed = time.perf_counter() - started
    sent = Delivery.objects.filter(dispatch=dispatch, status=Delivery.Status.SENT).count()
    return elapsed, sent


# --- 2. SMTP end to end ---------------------------------------------------------------------


def five_kb_message(n: int) -> bytes:
    body = (BODY * 6)[:4800]
    return (
        f"From: bench@example.com\r\nTo: reader{n}@example.com\r\nSubject: Bench\r\n"
        f"Message-ID: <raw-{n}@example.com>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def _raw_smtp_worker(port: int, start: int, count: int) -> None:
    messages = [five_kb_message(n) for n in range(start, start + count)]
    client = smtplib.SMTP("127.0.0.1", port)
    for n, message in enumerate(messages, start):
        client.sendmail("bench@example.com", [f"reader{n}@example.com"], message)
    client.quit()


def raw_parallel(target: Callable[..., None], args: list[tuple[Any, ...]]) -> float:
    processes = [multiprocessing.Process(target=target, args=a) for a in args]
    started = time.perf_counter()
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"raw loop process exited with {process.exitcode}")
    return time.perf_counter() - started


def bench_smtp(count: int, newsletter: bool) -> dict[str, Any]:
    from publishing.models import Topic

    say(f"\n== SMTP end to end, {count:,} emails, {WORKERS} workers/connections ==")
    reset()
    sink = SmtpSinkProcess()
    result: dict[str, Any] = {"emails": count}
    try:
        topic = Topic.objects.create(name="E2E", slug="e2e")
        make_subscribers(count, [topic])
        sink_channel(sink)
        with cluster(DELIVERY_CHANNEL_CONCURRENCY=str(WORKERS)) as running:
            before = sink.received()
            elapsed, sent = publish_and_wait("smtp-e2e", topic, running)
            received = sink.received() - before
        result.update(
            ours_s=elapsed,
            ours_per_s=sent / elapsed,
            sent=sent,
            sink_received=received,
            worker_peak_mb=running.peak,  # type: ignore[attr-defined]
        )
        say(
            f"ours (publish -> settled) {result['ours_per_s']:>8,.0f} msg/s  ({elapsed:.1f} s, "
            f"{sent:,} sent, sink received {received:,}); worker peak {running.peak:.0f} MB"  # type: ignore[attr-defined]
        )
        share = count // WORKERS
        before = sink.received()
        raw_s = raw_parallel(
            _raw_smtp_worker, [(sink.port, i * share, share) for i in range(WORKERS)]
        )
        raw_count = share * WORKERS
        result.update(raw_s=raw_s, raw_per_s=raw_count / raw_s)
        say(
            f"raw smtplib loop (5 KB)   {result['raw_per_s']:>8,.0f} msg/s  ({raw_s:.1f} s, "
            f"sink received {sink.received() - before:,})"
        )
        result["ratio_raw"] = result["ours_per_s"] / result["raw_per_s"]
        verdict("ours / raw smtplib", result["ratio_raw"], TARGETS["smtp_vs_raw"], higher=True)
        if newsletter:
            nl = bench_newsletter(count, sink)
            result["newsletter"] = nl
            if nl.get("per_s"):
                result["ratio_newsletter"] = result["ours_per_s"] / nl["per_s"]
                label = "ours / django-newsletter (measured)"
            else:
                result["ratio_newsletter"] = result["ours_per_s"] / QUOTED_NEWSLETTER_RATE
                label = (
                    f"ours / django-newsletter (QUOTED {QUOTED_NEWSLETTER_RATE:g}/s, not measured)"
                )
            verdict(label, result["ratio_newsletter"], TARGETS["smtp_vs_newsletter"], higher=True)
        verdict("worker peak MB", running.peak, TARGETS["peak_mb"], higher=False)  # type: ignore[attr-defined]
    finally:
        sink.stop()
    return result


# --- django-newsletter ------------------------------------------------------------------------

NEWSLETTER_SETTINGS = """
SECRET_KEY = "bench-only-not-secret-0123456789-0123456789-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
    "django.contrib.sites", "django.contrib.messages", "django.contrib.admin", "sorl.thumbnail",
    "newsletter",
]
SITE_ID = 1
ROOT_URLCONF = "benchurls"
DATABASES = {"default": {"ENGINE": "django.db.backends.postgresql", "NAME": "%(db)s",
    "USER": "postgres", "HOST": "127.0.0.1", "PORT": 5432,
    "OPTIONS": {"options": "-c search_path=%(schema)s"}}}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]}}]
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = %(port)d
NEWSLETTER_EMAIL_DELAY = 0
NEWSLETTER_BATCH_DELAY = 0
NEWSLETTER_BATCH_SIZE = 0
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

NEWSLETTER_RUN = """
import json, os, sys, time
os.environ["DJANGO_SETTINGS_MODULE"] = "benchsettings"
sys.path.insert(0, os.path.dirname(__file__))
import django
django.setup()
from django.core.management import call_command
from django.db import connection
call_command("migrate", verbosity=0)
from newsletter.models import Article, Message, Newsletter, Submission, Subscription
count = int(sys.argv[1])
body = open(os.path.join(os.path.dirname(__file__), "body.txt")).read()
Submission.objects.all().delete(); Message.objects.all().delete()
Subscription.objects.all().delete(); Newsletter.objects.all().delete()
letter = Newsletter.objects.create(title="Bench", slug="bench", email="bench@example.com",
    sender="Bench")
Subscription.objects.bulk_create(
    Subscription(newsletter=letter, name_field=f"Reader {i}", email_field=f"reader{i}@example.com",
        subscribed=True) for i in range(count))
message = Message.objects.create(title="Bench", slug="bench", newsletter=letter)
Article.objects.create(post=message, title="Bench", text=body, sortorder=1)
submission = Submission.from_message(message)
submission.prepared = True
submission.save()
statements = [0]
def counter(execute, sql, params, many, context):
    statements[0] += 1
    return execute(sql, params, many, context)
with connection.execute_wrapper(counter):
    started = time.perf_counter()
    submission.submit()
    elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "count": count, "statements": statements[0]}))
"""


def ensure_newsletter_venv() -> Path:
    python = NEWSLETTER_VENV / "bin" / "python"
    ready = python.exists() and (
        subprocess.run(
            [str(python), "-c", "import newsletter, sorl"], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not ready:
        say("Creating a throwaway virtualenv with django-newsletter==1.2 under var/bench/ ...")
        base = shutil.which("python3.11") or shutil.which("python3") or sys.executable
        subprocess.run([base, "-m", "venv", str(NEWSLETTER_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "django-newsletter==1.2",
                "sorl-thumbnail",
                "psycopg[binary]",
            ],
            check=True,
        )
    return python


def bench_newsletter(count: int, sink: SmtpSinkProcess) -> dict[str, Any]:
    try:
        python = ensure_newsletter_venv()
        # Its own schema of the benchmark's database: no other database name is needed, and
        # its tables (auth, sites, its own migrations) never meet ours.
        db = database_url().rsplit("/", 1)[1]
        ensure_schema(database_url(), NEWSLETTER_SCHEMA)
        NEWSLETTER_PROJECT.mkdir(parents=True, exist_ok=True)
        (NEWSLETTER_PROJECT / "benchsettings.py").write_text(
            NEWSLETTER_SETTINGS % {"db": db, "schema": NEWSLETTER_SCHEMA, "port": sink.port}
        )
        (NEWSLETTER_PROJECT / "benchurls.py").write_text(
            "from django.urls import include, path\n"
            'urlpatterns = [path("newsletter/", include("newsletter.urls"))]\n'
        )
        (NEWSLETTER_PROJECT / "body.txt").write_text(BODY)
        (NEWSLETTER_PROJECT / "run.py").write_text(NEWSLETTER_RUN)
        before = sink.received()
        done = subprocess.run(
            [str(python), str(NEWSLETTER_PROJECT / "run.py"), str(count)],
            capture_output=True,
            text=True,
            check=True,
            cwd=NEWSLETTER_PROJECT,
        )
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        received = sink.received() - before
        result = {
            "seconds": figures["seconds"],
            "per_s": received / figures["seconds"],
            "received": received,
            "statements_per_email": figures["statements"] / max(received, 1),
        }
        say(
            f"django-newsletter 1.2     {result['per_s']:>8,.0f} msg/s  "
            f"({figures['seconds']:.1f} s, sink received {received:,}, "
            f"{result['statements_per_email']:.1f} SQL statements per email)"
        )
        return result
    except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        say(f"django-newsletter could not be measured: {str(detail)[-800:]}")
        say(
            f"  using the issue's QUOTED figure of {QUOTED_NEWSLETTER_RATE:g} emails/s"
            " (not measured)"
        )
        return {"per_s": None, "quoted": QUOTED_NEWSLETTER_RATE}


# --- 3. SES end to end ------------------------------------------------------------------------


def _raw_ses_worker(endpoint: str, start: int, count: int) -> None:
    import boto3

    client = boto3.client(
        "sesv2",
        endpoint_url=endpoint,
        region_name="eu-west-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 (moto accepts anything)
    )
    for n in range(start, start + count):
        client.send_email(
            FromEmailAddress="bench@example.com",
            Destination={"ToAddresses": [f"reader{n}@example.com"]},
            Content={"Raw": {"Data": five_kb_message(n)}},
        )


def bench_ses(count: int) -> dict[str, Any]:
    import boto3
    from moto.server import ThreadedMotoServer

    from channels.models import Channel
    from publishing.models import Topic

    say(f"\n== SES end to end (moto server), {count:,} emails, {WORKERS} workers/clients ==")
    reset()
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")  # noqa: S106
    result: dict[str, Any] = {"emails": count}
    try:
        boto3.client("sesv2", endpoint_url=endpoint, region_name="eu-west-1").create_email_identity(
            EmailIdentity="bench@example.com"
        )
        topic = Topic.objects.create(name="SES", slug="ses")
        make_subscribers(count, [topic])
        from channels.configuration import save_channel

        channel = Channel(name="ses", kind="email_ses", is_default_email=True, batch_size=200)
        save_channel(
            channel,
            {
                "region": "eu-west-1",
                "endpoint_url": endpoint,
                "from_email": "bench@example.com",
                "access_key_id": "bench",
                "secret_access_key": "bench",
            },
        )
        with cluster(DELIVERY_CHANNEL_CONCURRENCY=str(WORKERS)) as running:
            elapsed, sent = publish_and_wait("ses-e2e", topic, running)
        result.update(ours_s=elapsed, ours_per_s=sent / elapsed, sent=sent)
        say(
            f"ours (publish -> settled) {result['ours_per_s']:>8,.0f} msg/s  "
            f"({elapsed:.1f} s, {sent:,} sent)"
        )
        share = count // WORKERS
        raw_s = raw_parallel(
            _raw_ses_worker, [(endpoint, i * share, share) for i in range(WORKERS)]
        )
        result.update(raw_s=raw_s, raw_per_s=share * WORKERS / raw_s)
        say(f"raw boto3 send_email loop {result['raw_per_s']:>8,.0f} msg/s  ({raw_s:.1f} s)")
        result["ratio"] = result["ours_per_s"] / result["raw_per_s"]
        verdict("ours / raw boto3", result["ratio"], TARGETS["ses_vs_raw"], higher=True)
    finally:
        server.stop()
    return result


# --- 4. Statements per message (in process) ---------------------------------------------------


def bench_statements(count: int) -> dict[str, Any]:
    from django.db import connection

    from channels.engine import batches, fanout
    from channels.models import Delivery
    from publishing.models import Topic

    say(f"\n== SQL statements per delivered message ({count:,} emails, in process) ==")
    reset()
    sink = SmtpSinkProcess()
    try:
        topic = Topic.objects.create(name="Statements", slug="statements")
        make_subscribers(count, [topic])
        channel = sink_channel(sink)
        dispatch = make_dispatch("statements", topic)
        statements = [0]

        def counter(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            statements[0] += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counter):
            started = time.perf_counter()
            fanout.plan_dispatch(dispatch.pk)
            while batches.send_batch(channel.pk).claimed:
                pass
            elapsed = time.perf_counter() - started
        sent = Delivery.objects.filter(dispatch=dispatch, status=Delivery.Status.SENT).count()
    finally:
        sink.stop()
    per = statements[0] / max(sent, 1)
    say(
        f"{statements[0]:,} statements for {sent:,} delivered: {per:.4f} per message "
        f"(one process, no queue: {sent / elapsed:,.0f} msg/s)"
    )
    verdict("statements per delivered message", per, TARGETS["statements"], higher=False)
    return {
        "statements": statements[0],
        "sent": sent,
        "per_message": per,
        "in_process_per_s": sent / elapsed,
    }


# --- 5. Rate-limit precision --------------------------------------------------------------------


class ThrottlingPeer:
    """An aiosmtpd server accepting at most ``rate`` messages/s (a token bucket holding 1/20 s
    of messages); above it, it answers 421 and counts the request as throttled."""

    def __init__(self, rate: float) -> None:
        from aiosmtpd.controller import Controller

        self.rate = rate
        self.capacity = max(1.0, rate / 20)
        self.tokens = self.capacity
        self.last = time.monotonic()
        self.accepted: list[float] = []
        self.throttled = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens < 1:
                self.throttled += 1
                return "421 4.7.0 Throttled: too many messages per second"
            self.tokens -= 1
            self.accepted.append(now)
        return "250 2.0.0 Ok"

    def stop(self) -> None:
        self.controller.stop()


def bench_rate(rate: float, seconds: float) -> dict[str, Any]:
    from channels.models import Channel
    from publishing.models import Topic

    count = int(rate * seconds)
    say(f"\n== Rate limit: {count:,} emails at {rate:g}/s through {WORKERS} workers ==")
    reset()
    peer = ThrottlingPeer(rate)
    try:
        topic = Topic.objects.create(name="Rate", slug="rate")
        make_subscribers(count, [topic])
        Channel.objects.create(
            name="throttled-peer",
            kind="email_smtp",
            is_default_email=True,
            batch_size=1000,
            rate_limit_per_second=rate,
            config={"host": "127.0.0.1", "port": peer.port, "timeout": 30},
        )
        with cluster(DELIVERY_CHANNEL_CONCURRENCY=str(WORKERS)) as running:
            publish_and_wait("rate", topic, running)
        accepted = peer.accepted
        # The steady rate: accepted messages over the time between the first and the last.
        span = accepted[-1] - accepted[0] if len(accepted) > 1 else 1.0
        achieved = (len(accepted) - 1) / span
        requests = len(accepted) + peer.throttled
        result = {
            "messages": count,
            "accepted": len(accepted),
            "throttled": peer.throttled,
            "achieved_per_s": achieved,
            "share": achieved / rate,
            "throttled_share": peer.throttled / max(requests, 1),
        }
    finally:
        peer.stop()
    say(
        f"achieved {achieved:,.1f} msg/s of {rate:g} ({result['share']:.1%}); "
        f"{peer.throttled} of {requests:,} requests throttled ({result['throttled_share']:.2%})"
    )
    verdict("share of the limit", result["share"], TARGETS["rate_share"], higher=True)
    verdict("throttled share", result["throttled_share"], TARGETS["throttled"], higher=False)
    return result


# --- 6. Events on vs off ------------------------------------------------------------------------


def _receiver(port: int, received: Any) -> None:
    """A lean local webhook endpoint (asyncio, HTTP/1.1 keep-alive): reads each request's
    headers and Content-Length body and answers 200 "ok" in one write, counting them. A lean
    peer, as Postfix's smtp-sink is for SMTP: its cost is not ours to measure."""
    import asyncio

    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    class Endpoint(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while True:
                head_end = self.buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    return
                length = 0
                for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                total = head_end + 4 + length
                if len(self.buffer) < total:
                    return
                self.buffer = self.buffer[total:]
                self.transport.write(response)
                with received.get_lock():
                    received.value += 1

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Endpoint, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def _smtp_run(count: int, sink: SmtpSinkProcess, events_url: str | None) -> dict[str, Any]:
    """One publish of ``count`` emails through real workers; with ``events_url``, an endpoint
    there listens to every delivery event and dispatch.completed."""
    from channels import webhook_events
    from channels.models import Delivery
    from events.models import Event, EventType
    from publishing.models import Topic

    reset()
    topic = Topic.objects.create(name="Events", slug="events")
    make_subscribers(count, [topic])
    sink_channel(sink)
    if events_url:
        delivery_types = [t for t in EventType.values if t.startswith("delivery.")]
        webhook_events.create_endpoint(
            webhook_events.EndpointInput(
                url=events_url, event_types=[*delivery_types, EventType.DISPATCH_COMPLETED]
            )
        )
    with cluster(DELIVERY_CHANNEL_CONCURRENCY=str(WORKERS)) as running:
        elapsed, sent = publish_and_wait(f"events-{bool(events_url)}", topic, running)
        drained = elapsed
        if events_url:
            started = time.perf_counter() - elapsed
            deadline = time.monotonic() + 600
            # Every event recorded has its delivery sent (the relay creates them after commit).
            sent_events = Delivery.objects.filter(
                kind=Delivery.Kind.EVENT, status=Delivery.Status.SENT
            )
            while sent_events.count() < Event.objects.count():
                if time.monotonic() > deadline:
                    raise TimeoutError("event deliveries not drained in 600 s")
                time.sleep(0.1)
            drained = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "per_s": sent / elapsed,
        "sent": sent,
        "events": Event.objects.count(),
        "event_deliveries_sent": Delivery.objects.filter(
            kind=Delivery.Kind.EVENT, status=Delivery.Status.SENT
        ).count(),
        "events_drained_s": drained,
    }


def bench_events(count: int, pairs: int = 2) -> dict[str, Any]:
    order = [
        mode for i in range(pairs) for mode in (("off", "on") if i % 2 == 0 else ("on", "off"))
    ]
    say(
        f"\n== Events off vs on: SMTP end to end, {count:,} emails, {WORKERS} workers, "
        f"{'/'.join(order)} =="
    )
    sink = SmtpSinkProcess()
    received = multiprocessing.Value("i", 0)
    port = free_port()
    receiver = multiprocessing.Process(target=_receiver, args=(port, received), daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{port}/events"
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    try:
        for mode in order:
            run = _smtp_run(count, sink, url if mode == "on" else None)
            runs[mode].append(run)
            extra = ""
            if mode == "on":
                extra = (
                    f"; {run['events']:,} events, {run['event_deliveries_sent']:,} POSTed, "
                    f"all received {run['events_drained_s']:.1f} s after publishing"
                )
            say(
                f"events {mode:<3} publish -> settled {run['per_s']:>8,.0f} msg/s "
                f"({run['seconds']:.1f} s, {run['sent']:,} sent{extra})"
            )
        share = count // WORKERS
        raw_s = raw_parallel(
            _raw_smtp_worker, [(sink.port, i * share, share) for i in range(WORKERS)]
        )
    finally:
        receiver.terminate()
        sink.stop()
    raw_per_s = share * WORKERS / raw_s
    say(f"raw smtplib loop (5 KB)   {raw_per_s:>8,.0f} msg/s  ({raw_s:.1f} s)")
    result: dict[str, Any] = {"emails": count, "raw_per_s": raw_per_s, "runs": runs}
    for mode in ("off", "on"):
        # The median: single runs on a shared machine move by a fifth from one to the next.
        median = statistics.median(r["per_s"] for r in runs[mode])
        result[f"{mode}_per_s"] = median
        result[f"ratio_{mode}"] = median / raw_per_s
        say(
            f"  SMTP ratio, events {mode}: {median / raw_per_s:.3f} "
            f"(ours {median:,.0f}/s, median of {len(runs[mode])})"
        )
    result["on_vs_off"] = result["ratio_on"] / result["ratio_off"]
    verdict("events on / events off", result["on_vs_off"], TARGETS["events_on_vs_off"], higher=True)
    say(f"  the endpoint received {received.value:,} requests")
    return result


# --- 7. Scale under production settings ---------------------------------------------------------

SCALE_REDIS_URL = "redis://127.0.0.1:6379/12"
#: Variables of the bench's own process (test settings) that production must not inherit:
#: production refuses OUTBOUND_ALLOWED_HOSTS, and the sent journal follows REDIS_URL there.
NOT_IN_PRODUCTION = (
    "DEBUG",
    "OUTBOUND_ALLOWED_HOSTS",
    "Q_SYNC",
    "TEST_QUIET_LOGGING",
    "DELIVERY_JOURNAL_URL",
)
PRODUCTION_HOST = "bench.example.org"


def production_secrets() -> None:
    """A SECRET_KEY and a Fernet key for this run, shared by the bench's process and the
    cluster: django-q2 signs each task with SECRET_KEY, and the bench's process enqueues the
    fan-out (publish); a cluster with another key would drop it."""
    import secrets

    from cryptography.fernet import Fernet

    os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(48))
    os.environ.setdefault("FIELD_ENCRYPTION_KEYS", Fernet.generate_key().decode())


def production_env(redis_url: str) -> dict[str, str]:
    """The cluster's environment: config.settings.prod, DEBUG off, with every value
    check_production_environment requires (config/env.py)."""
    env = {k: v for k, v in os.environ.items() if k not in NOT_IN_PRODUCTION}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.prod",
        SECRET_KEY=os.environ["SECRET_KEY"],
        FIELD_ENCRYPTION_KEYS=os.environ["FIELD_ENCRYPTION_KEYS"],
        ALLOWED_HOSTS=PRODUCTION_HOST,
        SITE_URL=f"https://{PRODUCTION_HOST}",
        # The cache (rate limits, throttles, the cluster's status) and the sent journal
        # (DELIVERY_JOURNAL_URL defaults to it) in Redis, as production requires.
        REDIS_URL=redis_url,
        DATABASE_CONN_MAX_AGE=os.environ.get("DATABASE_CONN_MAX_AGE", "60"),
        Q_WORKERS=str(WORKERS),
        DELIVERY_CHANNEL_CONCURRENCY=str(WORKERS),
        LOG_LEVEL="WARNING",
        LOG_FORMAT="text",
    )
    return env


def check_production_settings(env: dict[str, str]) -> None:
    """Load config.settings.prod with ``env`` (check_production_environment runs on import)
    and print what the workers will run with; raises if production refuses it."""
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "d = s.DATABASES['default'];"
        "print(s.SETTINGS_MODULE, 'DEBUG', s.DEBUG, '| cache', s.CACHES['default']['BACKEND'],"
        " s.CACHES['default'].get('LOCATION'), '| journal', s.DELIVERY_JOURNAL_URL,"
        " '| CONN_MAX_AGE', d['CONN_MAX_AGE'], '| workers', s.Q_CLUSTER['workers'],"
        " '| channel concurrency', s.DELIVERY_CHANNEL_CONCURRENCY)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"config.settings.prod refused the bench's environment:\n{done.stderr}")
    say(f"cluster settings: {done.stdout.strip()}")


class ProbedCluster(Cluster):
    """A real qcluster under production settings, started through bench/cluster_probe.py:
    every process of it counts its SQL statements and reports its role and peak memory."""

    def __init__(self, env: dict[str, str], startup_timeout: float = 60.0) -> None:
        self.probe_dir = Path(tempfile.mkdtemp(prefix="qcluster-probe-"))
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the cluster)
            prefix="qcluster-", suffix=".log", delete=False
        )
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "cluster_probe.py")],
            cwd=ROOT,
            env={**env, "BENCH_PROBE_DIR": str(self.probe_dir)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.peaks: dict[int, float] = {}
        self.killed = False
        deadline = time.monotonic() + startup_timeout
        while True:
            roles = [r["role"] for r in self.records().values()]
            if roles.count("worker") >= WORKERS and "pusher" in roles and "monitor" in roles:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.log_tail()
                if self.process.poll() is None:
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.cleanup()
                raise RuntimeError(f"the cluster did not start (roles seen: {roles}):\n{log}")
            time.sleep(0.1)
        time.sleep(1)  # the pusher's first polls

    def log_tail(self, size: int = 3000) -> str:
        return Path(self.log.name).read_text(errors="replace")[-size:]

    def records(self) -> dict[int, dict[str, Any]]:
        """What each process of the cluster last wrote (also those that have exited)."""
        found: dict[int, dict[str, Any]] = {}
        for path in self.probe_dir.glob("*.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            found[int(record["pid"])] = record
        return found

    def snapshot(self, timeout: float = 20.0) -> dict[int, dict[str, Any]]:
        """Ask every live process of the cluster (SIGUSR1: each one has the probe's handler)
        to write its figures now; returns them once all have answered. (A process runs the
        handler when it is back in Python: once in about 30 runs one took longer than 5 s.)"""
        asked = time.time()
        live = []
        for pid in self.records():
            try:
                os.kill(pid, signal.SIGUSR1)
                live.append(pid)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.records()
            if all(records[pid]["at"] >= asked for pid in live if running_process(pid)):
                return records
            time.sleep(0.02)
        raise TimeoutError("the cluster's processes did not all answer the snapshot")

    def stop(self) -> float:
        """SIGTERM to the cluster's main process only: django-q2 stops its pusher, workers and
        monitor in order, and each writes its final figures as it exits."""
        self.sample_memory()
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.killed = True
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        time.sleep(0.2)
        # Children outliving the main process (they should not): stop them too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        os.unlink(self.log.name)
        return max(self.peaks.values(), default=0.0)

    def memory(self) -> list[dict[str, Any]]:
        """Every process's peak RSS (VmHWM, MB): the larger of the bench's samples of /proc
        (every second) and the process's own last report (on exit), with its role."""
        records = self.records()
        rows = []
        for pid in sorted(set(records) | set(self.peaks)):
            record = records.get(pid, {})
            peak = max(record.get("vmhwm_kb", 0) / 1024, self.peaks.get(pid, 0.0))
            rows.append(
                {
                    "pid": pid,
                    "role": record.get("role", "unknown"),
                    "peak_mb": peak,
                    "last_pss_mb": record.get("pss_kb", 0) / 1024,
                }
            )
        return rows

    def cleanup(self) -> None:
        shutil.rmtree(self.probe_dir, ignore_errors=True)


def running_process(pid: int) -> bool:
    """True unless the process is gone or a zombie (exited, not yet reaped by its parent)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def statements_of(records: dict[int, dict[str, Any]]) -> int:
    return sum(int(r["statements"]) for r in records.values())


def wal_lsn() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")
        return int(cursor.fetchone()[0])


def other_databases_writes() -> int:
    """Rows inserted, updated and deleted in the server's other databases (their WAL counts
    in pg_current_wal_lsn too). PostgreSQL's statistics reach this view up to 10 s late."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT coalesce(sum(tup_inserted + tup_updated + tup_deleted), 0)"
            " FROM pg_stat_database WHERE datname IS NOT NULL AND datname <> current_database()"
        )
        return int(cursor.fetchone()[0])


def scale_population(count: int) -> None:
    """``count`` confirmed subscribers reader0 ... reader{count-1}, written in SQL
    (INSERT ... SELECT generate_series); kept from an earlier run when they are all there."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'active' AND confirmed_at IS NOT"
            " NULL AND email LIKE 'reader%%@example.com') FROM subscribers_subscriber"
        )
        total, ours = cursor.fetchone()
    if total == ours == count:
        say(f"{count:,} subscribers already there: kept")
        return
    reset()
    started = time.perf_counter()
    step = 250_000
    with connection.cursor() as cursor:
        for first in range(0, count, step):
            cursor.execute(
                """
                INSERT INTO subscribers_subscriber (email, email_hash, name, locale, timezone,
                    status, email_format, source, token_key, created_at, updated_at,
                    confirmed_at, tracking_opt_out)
                SELECT e, encode(sha256(convert_to(e, 'UTF8')), 'hex'), 'Reader ' || i, 'en',
                    'UTC', 'active', 'html', 'bench', gen_random_uuid(), now(), now(), now(),
                    false
                FROM (SELECT i, 'reader' || i || '@example.com' AS e
                      FROM generate_series(%s::bigint, %s::bigint) AS i) AS people
                ORDER BY i
                """,
                [first, min(first + step, count) - 1],
            )
        cursor.execute("VACUUM ANALYZE subscribers_subscriber")
    say(f"{count:,} subscribers created in SQL in {time.perf_counter() - started:.1f} s")


def scale_prepare(size: int, sink: SmtpSinkProcess, redis_url: str) -> Any:
    """The state every run starts from: an empty ledger and queue, the first ``size``
    subscribers subscribed to a new topic, the sink as default email channel, the Redis
    database emptied, statistics fresh and a CHECKPOINT (each run pays the same full-page
    writes). Returns the topic."""
    import redis
    from django.db import connection

    from publishing.models import Topic

    reset(keep_subscribers=True)
    redis.Redis.from_url(redis_url).flushdb()
    topic = Topic.objects.create(name="Scale", slug="scale")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO subscribers_subscription (frequency, created_at, updated_at,"
            " subscriber_id, topic_id) SELECT 'immediate', now(), now(), id, %s"
            " FROM subscribers_subscriber ORDER BY id LIMIT %s",
            [topic.pk, size],
        )
        if cursor.rowcount != size:
            raise RuntimeError(f"{cursor.rowcount} subscriptions for {size:,} subscribers")
    sink_channel(sink)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        cursor.execute("CHECKPOINT")
    return topic


def scale_run(size: int, sink: SmtpSinkProcess, env: dict[str, str], slug: str) -> dict[str, Any]:
    """One publish to ``size`` subscribers through a fresh production cluster: the rate, every
    process's peak memory, SQL statements and WAL bytes per message, the load average."""
    from django.db import connection, transaction

    from channels.models import Delivery
    from publishing import services
    from publishing.models import Dispatch

    topic = scale_prepare(size, sink, env["REDIS_URL"])
    publication = make_publication(slug, topic)
    running = ProbedCluster(env)
    try:
        try:
            load_before = load_average()
            before = running.snapshot()
            wal_before, others_before = wal_lsn(), other_databases_writes()
            sink_before = sink.received()
            publish_statements = [0]

            def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
                publish_statements[0] += 1
                return execute(sql, params, many, context)

            polls = [0]
            planned: list[float] = []
            first_sent: list[float] = []
            sent_by_planned: list[int] = []

            def poll() -> None:
                polls[0] += 1
                if polls[0] % 20 == 0:
                    running.sample_memory()
                if not first_sent and sink.received() > sink_before:
                    first_sent.append(time.perf_counter() - started)
                planned_now = Dispatch.objects.filter(pk=dispatch.pk, planned_at__isnull=False)
                if not planned and planned_now.exists():
                    planned.append(time.perf_counter() - started)
                    # Sending starts before the fan-out ends (decision 0088).
                    sent_by_planned.append(sink.received() - sink_before)
                elif not planned and not warned and time.perf_counter() - started > 60:
                    # Each range of the fan-out runs under production's statement_timeout.
                    warned.append(True)
                    say(
                        f"    fan-out not committed 60 s after publishing; the cluster's log:\n"
                        f"{running.log_tail()}"
                    )

            warned: list[bool] = []
            started = time.perf_counter()
            with connection.execute_wrapper(count), transaction.atomic():
                dispatch = services.publish(publication, by=None)
            try:
                wait_settled(dispatch.pk, poll, timeout=900 + size / 500)
            except TimeoutError:
                say(f"    not settled in time; the cluster's log:\n{running.log_tail()}")
                raise
            elapsed = time.perf_counter() - started
            after = running.snapshot()
            wal = wal_lsn() - wal_before
            sent = Delivery.objects.filter(dispatch=dispatch, status=Delivery.Status.SENT).count()
            received = sink.received() - sink_before
            load_after = load_average()
        finally:
            running.stop()
        others = other_databases_writes() - others_before
        memory = running.memory()
    finally:
        running.cleanup()
    statements = statements_of(after) - statements_of(before)
    statements_by_role: dict[str, int] = {}
    gc_by_role: dict[str, list[float]] = {}
    for pid, record in after.items():
        done = int(record["statements"]) - int(before.get(pid, {}).get("statements", 0))
        statements_by_role[record["role"]] = statements_by_role.get(record["role"], 0) + done
        earlier = before.get(pid, {})
        gc = gc_by_role.setdefault(record["role"], [0.0, 0, 0, 0])
        gc[0] += record.get("gc_seconds", 0.0) - earlier.get("gc_seconds", 0.0)
        for generation in range(3):
            gc[generation + 1] += (
                record.get("gc_runs", [0, 0, 0])[generation]
                - earlier.get("gc_runs", [0, 0, 0])[generation]
            )
    by_role: dict[str, float] = {}
    for row in memory:
        by_role[row["role"]] = max(by_role.get(row["role"], 0.0), row["peak_mb"])
    return {
        "recipients": size,
        "seconds": elapsed,
        "sent": sent,
        "sink_received": received,
        "per_s": sent / elapsed,
        # Publish until the bench saw the fan-out's last range committed (polled every
        # 50 ms), the first message received, and how many were received by then.
        "fanout_s": planned[0] if planned else None,
        "first_sent_s": first_sent[0] if first_sent else None,
        "sent_during_fanout": sent_by_planned[0] if sent_by_planned else None,
        "cluster_statements": statements,
        "statements_by_role": statements_by_role,
        "gc_by_role": gc_by_role,
        "publish_statements": publish_statements[0],
        "statements_per_message": statements / max(sent, 1),
        "statements_per_message_with_publish": (statements + publish_statements[0]) / max(sent, 1),
        "wal_bytes": wal,
        "wal_per_message": wal / max(sent, 1),
        "other_databases_rows_written": others,
        "memory": memory,
        "peak_mb_by_role": by_role,
        "cluster_killed": running.killed,
        "load_before": load_before,
        "load_after": load_after,
    }


def say_run(label: str, run: dict[str, Any]) -> None:
    say(
        f"{label}: {run['per_s']:>7,.0f} msg/s ({run['seconds']:.1f} s, {run['sent']:,} sent, "
        f"sink received {run['sink_received']:,}) | load {run['load_before']} -> "
        f"{run['load_after']}"
    )
    if run["fanout_s"] is not None:
        say(
            f"    fan-out committed {run['fanout_s']:.1f} s after publishing; first message "
            f"received after {run.get('first_sent_s') or 0:.2f} s, "
            f"{run.get('sent_during_fanout') or 0:,} received by the fan-out's end"
        )
    say(
        f"    SQL: {run['cluster_statements']:,} statements in the cluster = "
        f"{run['statements_per_message']:.4f} per message (+{run['publish_statements']} for the "
        f"publish call in the bench's process: {run['statements_per_message_with_publish']:.4f});"
        " by role: "
        + ", ".join(f"{role} {n:,}" for role, n in sorted(run["statements_by_role"].items()))
    )
    if run.get("gc_by_role"):
        say(
            "    garbage collection between the snapshots, by role: "
            + ", ".join(
                f"{role} {gc[0]:.2f} s ({gc[1]:,.0f}/{gc[2]:,.0f}/{gc[3]:,.0f} runs of generation"
                " 0/1/2)"
                for role, gc in sorted(run["gc_by_role"].items())
            )
        )
    noise = run["other_databases_rows_written"]
    say(
        f"    WAL: {run['wal_bytes'] / 1e6:,.1f} MB = {run['wal_per_message']:,.0f} bytes per "
        "message"
        + (
            f" (NOT ours alone: other databases wrote {noise:,} rows meanwhile)"
            if noise
            else " (other databases wrote no rows meanwhile)"
        )
    )
    peaks = ", ".join(
        f"{row['role']} {row['pid']} {row['peak_mb']:.1f} ({row['last_pss_mb']:.1f})"
        for row in run["memory"]
    )
    say(f"    peak memory per process, MB: VmHWM (PSS at its last report): {peaks}")
    if run["cluster_killed"]:
        say(
            "    the cluster did not stop within 60 s and was killed: its final figures are missing"
        )


def ratio_summary(name: str, ratios: list[float], target: float) -> dict[str, Any]:
    median = statistics.median(ratios)
    met = sum(r >= target for r in ratios)
    say(
        f"  {name}: median {median:.3f} (min {min(ratios):.3f}, max {max(ratios):.3f}; "
        f"{', '.join(f'{r:.3f}' for r in ratios)}) over {len(ratios)} samples (target >= "
        f"{target:g}): {'MET' if median >= target else 'MISSED'} on the median, met by "
        f"{met} of {len(ratios)} samples"
    )
    return {"median": median, "min": min(ratios), "max": max(ratios), "samples": ratios}


def pipelined_content(message: bytes) -> bytes:
    """The bytes smtplib's data() sends for ``message`` after DATA: dot-stuffed, ending with
    CRLF, then the final dot."""
    import re

    content = re.sub(rb"(?m)^\.", b"..", message)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _raw_pipelined_worker(port: int, start: int, count: int, results: Any) -> None:
    """ESMTP PIPELINING (RFC 2920) over one connection: each message's MAIL FROM, RCPT TO and
    DATA leave in the same write as the previous message's content and final dot; then the
    previous message's end-of-data reply and this message's three replies (354 last) are
    read. About one round trip per message."""
    contents = [pipelined_content(five_kb_message(n)) for n in range(start, start + count)]
    envelopes = [
        f"MAIL FROM:<bench@example.com>\r\nRCPT TO:<reader{n}@example.com>\r\nDATA\r\n".encode()
        for n in range(start, start + count)
    ]
    sock = socket.create_connection(("127.0.0.1", port))
    stream = sock.makefile("rb")

    def reply() -> tuple[int, bytes]:
        lines = []
        while True:
            line = stream.readline()
            if not line:
                raise ConnectionError("the server closed the connection")
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines)

    replies = accepted = 0
    failures: list[str] = []
    greeting = reply()
    sock.sendall(b"EHLO bench.example.com\r\n")
    code, text = reply()
    replies += 2
    if greeting[0] != 220 or code != 250 or b"PIPELINING" not in text.upper():
        failures.append(f"no PIPELINING: greeting {greeting!r}, EHLO {code} {text!r}")
        count = 0
    if count:
        sock.sendall(envelopes[0])
    owed = False  # the previous message's end-of-data reply
    for i in range(count):
        if owed:
            code, text = reply()
            replies += 1
            if code == 250:
                accepted += 1
            else:
                failures.append(f"message {start + i - 1}: end of data {code} {text!r}")
        mail, rcpt, data = reply(), reply(), reply()
        replies += 3
        if mail[0] != 250 or rcpt[0] not in (250, 251) or data[0] != 354:
            failures.append(f"message {start + i}: MAIL {mail}, RCPT {rcpt}, DATA {data}")
            owed = False
            break  # the pipeline is out of step: stop this connection, counted as failed
        following = envelopes[i + 1] if i + 1 < count else b""
        sock.sendall(contents[i] + following)
        owed = True
    if owed:
        code, text = reply()
        replies += 1
        if code == 250:
            accepted += 1
        else:
            failures.append(f"message {start + count - 1}: end of data {code} {text!r}")
    sock.sendall(b"QUIT\r\n")
    reply()
    sock.close()
    results.put({"accepted": accepted, "replies": replies, "failures": failures[:20]})


def raw_pipelined(port: int, count: int) -> dict[str, Any]:
    results: Any = multiprocessing.Queue()
    share = count // WORKERS
    seconds = raw_parallel(
        _raw_pipelined_worker, [(port, i * share, share, results) for i in range(WORKERS)]
    )
    parts = [results.get(timeout=10) for _ in range(WORKERS)]
    accepted = sum(p["accepted"] for p in parts)
    failures = [f for p in parts for f in p["failures"]]
    return {
        "messages": share * WORKERS,
        "accepted": accepted,
        "replies": sum(p["replies"] for p in parts),
        "failures": failures,
        "seconds": seconds,
        "per_s": accepted / seconds,
    }


def bench_scale_sizes(
    sizes: list[int], sink: SmtpSinkProcess, env: dict[str, str]
) -> dict[str, Any]:
    say(
        f"\n== Scale: {', '.join(f'{s:,}' for s in sizes)} recipients, production settings, "
        f"{WORKERS} workers, smtp-sink =="
    )
    runs = []
    for size in sizes:
        run = scale_run(size, sink, env, f"scale-{size}")
        runs.append(run)
        say_run(f"{size:>9,} recipients", run)
    base = next((r for r in runs if r["recipients"] == 20_000), runs[0])
    say(
        f"\nAgainst {base['recipients']:,} recipients ({base['per_s']:,.0f} msg/s), load "
        f"{load_average()}:"
    )
    for run in runs:
        run["rate_vs_base"] = run["per_s"] / base["per_s"]
        growth = {
            role: peak / base["peak_mb_by_role"][role]
            for role, peak in run["peak_mb_by_role"].items()
            if base["peak_mb_by_role"].get(role)
        }
        run["memory_vs_base"] = growth
        say(
            f"  {run['recipients']:>9,}: rate x{run['rate_vs_base']:.3f}; peak memory by role "
            "(largest process of each, MB, x base): "
            + ", ".join(
                f"{role} {run['peak_mb_by_role'][role]:.1f} (x{ratio:.3f})"
                for role, ratio in sorted(growth.items())
            )
            + f" | load {run['load_after']}"
        )
    largest = max(runs, key=lambda r: r["recipients"])
    result: dict[str, Any] = {"runs": runs, "base_recipients": base["recipients"]}
    if largest is not base:
        result["rate_ratio"] = largest["rate_vs_base"]
        verdict(
            f"rate({largest['recipients']:,}) / rate({base['recipients']:,})",
            largest["rate_vs_base"],
            TARGETS["scale_rate"],
            higher=True,
        )
        worst = max(largest["memory_vs_base"].items(), key=lambda item: item[1])
        verdict(
            f"largest growth of a role's peak memory ({worst[0]}), x base",
            worst[1],
            TARGETS["scale_memory"],
            higher=False,
        )
    verdict(
        f"SQL statements per message at {largest['recipients']:,} (cluster)",
        largest["statements_per_message"],
        TARGETS["scale_statements"],
        higher=False,
        digits=4,
    )
    return result


def bench_scale_ceilings(
    count: int,
    samples: int,
    newsletter_emails: int,
    sink: SmtpSinkProcess,
    env: dict[str, str],
) -> dict[str, Any]:
    sides = ["ours", "smtplib", "pipelined"] + (["newsletter"] if newsletter_emails else [])
    say(
        f"\n== Ceilings at {count:,} emails, {samples} samples, {WORKERS} workers/connections, "
        "sides alternating =="
        + (
            f"\n(django-newsletter sends {newsletter_emails:,} emails per sample: it runs at about"
            " 200/s; its ratio compares rates, ours at "
            f"{count:,})"
            if newsletter_emails
            else ""
        )
    )
    figures: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for sample in range(samples):
        order = sides if sample % 2 == 0 else sides[::-1]
        say(f"-- sample {sample + 1}: {' / '.join(order)}")
        for side in order:
            if side == "ours":
                run = scale_run(count, sink, env, f"ceiling-{sample}")
                figures["ours"].append(run)
                say_run("ours (publish -> settled)", run)
            elif side == "smtplib":
                share = count // WORKERS
                before, load = sink.received(), load_average()
                seconds = raw_parallel(
                    _raw_smtp_worker, [(sink.port, i * share, share) for i in range(WORKERS)]
                )
                received = sink.received() - before
                figures["smtplib"].append(
                    {"per_s": share * WORKERS / seconds, "seconds": seconds, "load": load}
                )
                say(
                    f"raw smtplib loop (5 KB): {share * WORKERS / seconds:>7,.0f} msg/s "
                    f"({seconds:.1f} s, sink received {received:,}) | load {load} -> "
                    f"{load_average()}"
                )
            elif side == "pipelined":
                before, load = sink.received(), load_average()
                raw = raw_pipelined(sink.port, count)
                raw["sink_received"] = sink.received() - before
                raw["load"] = load
                figures["pipelined"].append(raw)
                say(
                    f"raw pipelined client:    {raw['per_s']:>7,.0f} msg/s ({raw['seconds']:.1f}"
                    f" s, {raw['accepted']:,} of {raw['messages']:,} answered 250, "
                    f"{raw['replies']:,} replies read, sink received {raw['sink_received']:,})"
                    f" | load {load} -> {load_average()}"
                )
                for failure in raw["failures"]:
                    say(f"    FAILED: {failure}")
            else:
                load = load_average()
                nl = bench_newsletter(newsletter_emails, sink)
                nl["load"] = load
                figures["newsletter"].append(nl)
                say(f"    | load {load} -> {load_average()}")
    ours = [r["per_s"] for r in figures["ours"]]
    say(f"\nRatios, sample by sample (ours in the same sample), load {load_average()}:")
    result: dict[str, Any] = {"emails": count, "samples": samples, "runs": figures}
    result["vs_smtplib"] = ratio_summary(
        "ours / raw smtplib",
        [o / r["per_s"] for o, r in zip(ours, figures["smtplib"], strict=True)],
        TARGETS["scale_vs_raw"],
    )
    result["vs_pipelined"] = ratio_summary(
        "ours / raw pipelined client",
        [o / r["per_s"] for o, r in zip(ours, figures["pipelined"], strict=True)],
        TARGETS["scale_vs_pipelined"],
    )
    if newsletter_emails:
        measured = [
            (o, n["per_s"]) for o, n in zip(ours, figures["newsletter"], strict=True) if n["per_s"]
        ]
        if measured:
            result["vs_newsletter"] = ratio_summary(
                f"ours ({count:,}) / django-newsletter ({newsletter_emails:,})",
                [o / n for o, n in measured],
                TARGETS["scale_vs_newsletter"],
            )
        else:
            say("  django-newsletter could not be measured: no ratio")
    return result


def bench_scale(
    sizes: list[int],
    *,
    samples: int,
    ceiling_emails: int,
    newsletter_emails: int,
    redis_url: str,
    ceilings: bool,
) -> dict[str, Any]:
    env = production_env(redis_url)
    check_production_settings(env)
    scale_population(max([*sizes, ceiling_emails if ceilings else 0]))
    sink = SmtpSinkProcess()
    result: dict[str, Any] = {"workers": WORKERS, "redis_url": redis_url}
    try:
        result["sizes"] = bench_scale_sizes(sizes, sink, env)
        if ceilings:
            result["ceilings"] = bench_scale_ceilings(
                ceiling_emails, samples, newsletter_emails, sink, env
            )
    finally:
        sink.stop()
    return result


def main() -> None:
    global WORKERS
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--fanout", type=int, default=200_000)
    parser.add_argument("--emails", type=int, default=20_000)
    parser.add_argument("--ses", type=int, default=3_000, help="Emails through SES (moto).")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rate-seconds", type=float, default=10.0)
    parser.add_argument(
        "--event-emails", type=int, default=10_000, help="Emails per run of the events part."
    )
    parser.add_argument(
        "--event-pairs", type=int, default=2, help="Off/on pairs of the events part (ABBA...)."
    )
    parser.add_argument("--no-newsletter", action="store_true")
    parser.add_argument(
        "--only",
        default="fanout,smtp,ses,statements,rate,events",
        help="Comma-separated parts to run; scale (issue 18) only when named.",
    )
    parser.add_argument(
        "--workers", type=int, default=WORKERS, help="Worker processes (and raw connections)."
    )
    parser.add_argument(
        "--sizes",
        default="20000,200000,1000000",
        help="Scale part: recipients per run, comma-separated.",
    )
    parser.add_argument(
        "--samples", type=int, default=3, help="Scale part: samples of each ceiling's ratio."
    )
    parser.add_argument(
        "--ceiling-emails", type=int, default=20_000, help="Scale part: emails per ceiling run."
    )
    parser.add_argument(
        "--newsletter-emails",
        type=int,
        default=5_000,
        help="Scale part: emails per django-newsletter run (0: none).",
    )
    parser.add_argument(
        "--redis-url", default=SCALE_REDIS_URL, help="Scale part: the cluster's REDIS_URL."
    )
    parser.add_argument("--no-ceilings", action="store_true", help="Scale part: the sizes only.")
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    args = parser.parse_args()
    WORKERS = args.workers  # the parts read it when they run
    parts = set(args.only.split(","))
    if "scale" in parts:
        production_secrets()
        # The bench's own process never sends, but keep it off other sessions' Redis too.
        os.environ.setdefault("DELIVERY_JOURNAL_URL", args.redis_url)
    setup_django()
    say(
        f"bench/delivery.py on {socket.gethostname()}, {os.cpu_count()} cores,"
        f" load {load_average()}"
    )
    figures: dict[str, Any] = {"load_before": load_average()}
    if "fanout" in parts:
        figures["fanout"] = bench_fanout(args.fanout)
    if "smtp" in parts:
        figures["smtp"] = bench_smtp(args.emails, not args.no_newsletter)
    if "ses" in parts:
        figures["ses"] = bench_ses(args.ses)
    if "statements" in parts:
        figures["statements"] = bench_statements(args.emails)
    if "rate" in parts:
        figures["rate"] = bench_rate(args.rate, args.rate_seconds)
    if "events" in parts:
        figures["events"] = bench_events(args.event_emails, args.event_pairs)
    if "scale" in parts:
        figures["scale"] = bench_scale(
            [int(size) for size in args.sizes.split(",")],
            samples=args.samples,
            ceiling_emails=args.ceiling_emails,
            newsletter_emails=0 if args.no_newsletter else args.newsletter_emails,
            redis_url=args.redis_url,
            ceilings=not args.no_ceilings,
        )
    figures["load_after"] = load_average()
    say(f"\nload average before {figures['load_before']}, after {figures['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    # The scale part's population (up to a million subscribers) is kept for the next run.
    reset(keep_subscribers="scale" in parts)


if __name__ == "__main__":
    main()
