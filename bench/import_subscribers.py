"""Benchmark: import 1,000,000 subscribers from CSV into PostgreSQL, three ways.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/pub_sub_bench \
        python bench/import_subscribers.py [--rows 1000000]

1. ours: subscribers.services.import_subscribers (validation, dedupe, suppression, report);
2. copy: a raw COPY of the same rows, prepared beforehand (the database's ceiling);
3. bulk_create: Django's bulk_create in batches of 1,000 (the naive way).

Each runs in its own process, so each peak memory (max RSS) is its own. Prints rows/s, peak
memory and the ratios against the targets (docs/performance.md).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BULK_BATCH = 1000
TARGET_ROWS_PER_SECOND = 60_000
TARGET_COPY_RATIO = 0.5
TARGET_BULK_RATIO = 3.0
TARGET_PEAK_MB = 300


def setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ.setdefault("TEST_QUIET_LOGGING", "1")
    import django

    django.setup()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE subscribers_subscriber, subscribers_subscription,"
            " subscribers_consentevent RESTART IDENTITY CASCADE"
        )


def generate(path: Path, rows: int) -> None:
    rng = random.Random(42)
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", ""]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "locale", "timezone"])
        for n in range(rows):
            writer.writerow(
                [
                    f"Reader.{n}.{rng.randrange(10**6)}@Example{n % 97}.com",
                    f"Reader {n}",
                    "fr" if n % 5 == 0 else "en",
                    zones[n % len(zones)],
                ]
            )


def prepare_copy_file(csv_path: Path, copy_path: Path) -> None:
    """The same rows in COPY text format with every column computed: what COPY loads."""
    now = "2026-11-28 12:00:00+00"
    with (
        csv_path.open(newline="", encoding="utf-8") as source,
        copy_path.open("w", encoding="utf-8") as out,
    ):
        reader = csv.reader(source)
        next(reader)
        for email, name, locale, zone in reader:
            lower = email.lower()
            digest = hashlib.sha256(lower.encode()).hexdigest()
            out.write(
                f"{email}\t{digest}\t{name}\t{locale}\t{zone or 'UTC'}\tpending\thtml\timport"
                f"\t{uuid.uuid4()}\t{now}\t{now}\n"
            )


def run_ours(csv_path: Path) -> dict[str, Any]:
    from subscribers.services import ImportOptions, import_subscribers

    truncate()
    started = time.perf_counter()
    report = import_subscribers(csv_path, ImportOptions(progress=False))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": report.created, "report": report.summary()}


def run_ours_full(csv_path: Path) -> dict[str, Any]:
    """Ours with --topics (one) and --confirmed: a subscription and a consent event per row."""
    from publishing.models import Topic
    from subscribers.services import ImportOptions, import_subscribers

    truncate()
    Topic.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    options = ImportOptions(topics=["bench"], confirmed=True, consent_note="benchmark")
    started = time.perf_counter()
    report = import_subscribers(csv_path, options)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": report.created, "report": report.summary()}


def run_copy(copy_path: Path) -> dict[str, Any]:
    from django.db import connection, transaction

    truncate()
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.copy(
            "COPY subscribers_subscriber (email, email_hash, name, locale, timezone, status,"
            " email_format, source, token_key, created_at, updated_at) FROM STDIN"
        ) as copy,
        copy_path.open("rb") as handle,
    ):
        while chunk := handle.read(1 << 20):
            copy.write(chunk)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM subscribers_subscriber")
        rows = cursor.fetchone()[0]
    return {"seconds": seconds, "rows": rows}


def run_bulk_create(csv_path: Path) -> dict[str, Any]:
    from django.db import transaction

    from subscribers.models import Subscriber

    truncate()
    rows = 0
    started = time.perf_counter()
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        batch: list[Subscriber] = []
        for email, name, locale, zone in reader:
            batch.append(
                Subscriber(
                    email=email,
                    email_hash=hashlib.sha256(email.lower().encode()).hexdigest(),
                    name=name,
                    locale=locale,
                    timezone=zone or "UTC",
                    source="import",
                )
            )
            if len(batch) == BULK_BATCH:
                with transaction.atomic():
                    Subscriber.objects.bulk_create(batch)
                rows += len(batch)
                batch = []
        if batch:
            Subscriber.objects.bulk_create(batch)
            rows += len(batch)
    return {"seconds": time.perf_counter() - started, "rows": rows}


def phase(name: str, path: Path) -> dict[str, Any]:
    """Run one method in a fresh process and return its figures."""
    output = subprocess.run(
        [sys.executable, __file__, "--phase", name, str(path)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ},
    ).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--phase", choices=["ours", "ours_full", "copy", "bulk_create"])
    parser.add_argument(
        "--full",
        action="store_true",
        help="Also time ours with --topics and --confirmed (3 rows written per subscriber)",
    )
    parser.add_argument("path", nargs="?", type=Path)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database (for example pub_sub_bench).")
    setup_django()
    if args.phase:
        runner = {
            "ours": run_ours,
            "ours_full": run_ours_full,
            "copy": run_copy,
            "bulk_create": run_bulk_create,
        }[args.phase]
        result = runner(args.path)
        result["peak_mb"] = peak_mb()
        print(json.dumps(result))
        return

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory() as folder:
        csv_path = Path(folder) / "subscribers.csv"
        copy_path = Path(folder) / "subscribers.copy"
        generate(csv_path, args.rows)
        prepare_copy_file(csv_path, copy_path)
        size_mb = csv_path.stat().st_size / 1e6
        print(
            f"{args.rows:,} rows, CSV {size_mb:.0f} MB, PostgreSQL at {os.environ['DATABASE_URL']}"
        )
        results = {
            "ours": phase("ours", csv_path),
            "copy": phase("copy", copy_path),
            "bulk_create": phase("bulk_create", csv_path),
        }
        if args.full:
            results["ours_full"] = phase("ours_full", csv_path)
    truncate()
    for name, result in results.items():
        result["rate"] = result["rows"] / result["seconds"]
        print(
            f"{name:12} {result['rows']:>9,} rows in {result['seconds']:6.1f} s = "
            f"{result['rate']:>9,.0f} rows/s, peak memory {result['peak_mb']:.0f} MB"
        )
    print(f"ours: {results['ours'].get('report')}")
    ours = results["ours"]["rate"]
    copy_ratio = ours / results["copy"]["rate"]
    bulk_ratio = ours / results["bulk_create"]["rate"]
    checks = [
        (f"rows/s >= {TARGET_ROWS_PER_SECOND:,}", f"{ours:,.0f}", ours >= TARGET_ROWS_PER_SECOND),
        (
            f"ours / COPY >= {TARGET_COPY_RATIO}",
            f"{copy_ratio:.2f}",
            copy_ratio >= TARGET_COPY_RATIO,
        ),
        (
            f"ours / bulk_create >= {TARGET_BULK_RATIO}",
            f"{bulk_ratio:.2f}",
            bulk_ratio >= TARGET_BULK_RATIO,
        ),
        (
            f"peak memory < {TARGET_PEAK_MB} MB",
            f"{results['ours']['peak_mb']:.0f} MB",
            results["ours"]["peak_mb"] < TARGET_PEAK_MB,
        ),
    ]
    for label, value, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}: {value}")


if __name__ == "__main__":
    main()
