"""Benchmark: what one message costs the ledger in writes, with the indexes as shipped and
with the two single-column foreign-key indexes issue 18 dropped put back.

    python bench/ledger_writes.py [--messages 100000] [--batch 500]

Creates the database pub_ledger_bench (dropped and re-created) and migrates it. For each
variant, on an emptied ledger after a CHECKPOINT (so both start with the same full-page
writes): the fan-out's INSERT ... SELECT of --messages rows, then per batch of --batch rows the
claim's UPDATE (status sending, lease, one more attempt) and the outcome's UPDATE (status
sent, sent_at, provider id): the three row versions every message makes. Prints the WAL bytes
per message of each step (pg_current_wal_lsn, deterministic for a given schema) and the time
(which depends on the machine's load), as a Markdown table for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "pub_ledger_bench"
DROPPED = {
    "channels_delivery_dispatch_id_bench": "(dispatch_id)",
    "channels_delivery_channel_id_bench": "(channel_id)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    options = parser.parse_args()
    code = (
        "import psycopg; c = psycopg.connect('postgresql://postgres@127.0.0.1:5432/postgres',"
        f" autocommit=True); c.execute('DROP DATABASE IF EXISTS {DATABASE}');"
        f" c.execute('CREATE DATABASE {DATABASE}')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{DATABASE}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    results = [
        ("as shipped (10 indexes)", run(options.messages, options.batch, extra=False)),
        ("with the 2 FK indexes back (12)", run(options.messages, options.batch, extra=True)),
    ]
    print(f"\n{options.messages:,} messages, claims and outcomes in batches of {options.batch}:\n")
    print("| Ledger | WAL insert | WAL claim | WAL outcome | WAL total (bytes/message) | Time |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (wal, seconds) in results:
        total = sum(wal)
        print(
            f"| {name} | {wal[0]:.0f} | {wal[1]:.0f} | {wal[2]:.0f} | {total:.0f} "
            f"| {seconds:.1f} s |"
        )
    shipped, extra = results[0][1][0], results[1][1][0]
    saved = 1 - sum(shipped) / sum(extra)
    print(f"\nWAL per message saved by dropping the two indexes: {saved:.1%}")


def lsn(cursor: object) -> int:
    cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")  # type: ignore[attr-defined]
    return int(cursor.fetchone()[0])  # type: ignore[attr-defined]


def run(messages: int, batch: int, *, extra: bool) -> tuple[list[float], float]:
    from django.db import connection
    from django.utils import timezone

    from channels.models import Channel
    from publishing.models import Dispatch
    from tests.factories import DispatchFactory

    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE channels_delivery CASCADE")
        for name, columns in DROPPED.items():
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
            if extra:
                cursor.execute(f"CREATE INDEX {name} ON channels_delivery {columns}")
        channel, _ = Channel.objects.get_or_create(name="Bench", kind="email_file")
        dispatch = Dispatch.objects.first() or DispatchFactory.create()
        now = timezone.now()
        cursor.execute("CHECKPOINT")
        started = time.perf_counter()
        marks = [lsn(cursor)]
        cursor.execute(
            "INSERT INTO channels_delivery (kind, dispatch_id, channel_id, recipient, priority,"
            " status, attempts, next_attempt_at, last_error, provider_message_id, created_at,"
            " updated_at, language) SELECT 'subscriber', %s, %s, '', 100, 'queued', 0, %s, '',"
            " '', %s, %s, '' FROM generate_series(1, %s)",
            [dispatch.pk, channel.pk, now, now, now, messages],
        )
        marks.append(lsn(cursor))
        cursor.execute("SELECT min(id), max(id) FROM channels_delivery")
        first, last = cursor.fetchone()
        for low in range(first, last + 1, batch):
            cursor.execute(
                "UPDATE channels_delivery SET status = 'sending', attempts = attempts + 1,"
                " lease_expires_at = %s, updated_at = %s WHERE id >= %s AND id < %s",
                [now, now, low, low + batch],
            )
        marks.append(lsn(cursor))
        for low in range(first, last + 1, batch):
            cursor.execute(
                "UPDATE channels_delivery SET status = 'sent', sent_at = %s, updated_at = %s,"
                " lease_expires_at = NULL, provider_message_id = 'id-' || id"
                " WHERE id >= %s AND id < %s",
                [now, now, low, low + batch],
            )
        marks.append(lsn(cursor))
        seconds = time.perf_counter() - started
    wal = [(marks[i + 1] - marks[i]) / messages for i in range(3)]
    return wal, seconds


if __name__ == "__main__":
    main()
