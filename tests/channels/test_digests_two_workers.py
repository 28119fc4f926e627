"""Exactly one digest per subscriber and period with two real worker processes (decision 0081):
two OS processes run the scheduled task (``channels.tasks.send_digests``) at the same moment
against PostgreSQL, over many subscribers in zones from UTC-10 to UTC+13:45 with different
hours, and each sends what it wrote to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import zoneinfo
from pathlib import Path

import psycopg
import pytest
import time_machine
from django.db import connection

from channels.digest_schedule import DAILY, Timing, latest_end
from channels.digests import send_digests
from channels.models import Channel, Delivery, Digest
from publishing.models import Topic
from subscribers.models import Subscriber
from tests.channels.cluster import database_url
from tests.channels.conftest import SmtpSink, add_subscribers
from tests.channels.digests_support import publish
from tests.conftest import REPO_ROOT

NOW = dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
ZONES = (
    "UTC",
    "Europe/Paris",
    "America/New_York",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Asia/Tokyo",
    "Pacific/Honolulu",
    "Pacific/Chatham",
    "Australia/Adelaide",
)
SUBSCRIBERS = 400
#: Each worker: Django set up, then wait for the go (a file), then the scheduled task's body
#: with the clock at NOW (time-machine, ticking), then print how many digests it wrote.
WORKER = """
import os, sys, time
import django
django.setup()
import time_machine
from pathlib import Path
from channels import tasks
folder = Path(sys.argv[1])
(folder / ("ready-" + sys.argv[2])).touch()
while not (folder / "go").exists():
    time.sleep(0.005)
with time_machine.travel(sys.argv[3], tick=True):
    print("written", tasks.send_digests(), flush=True)
"""


def start_worker(folder: Path, name: str, environment: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(folder), name, NOW.isoformat()],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_two_worker_processes_write_and_send_one_digest_per_subscriber_and_period(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic, tmp_path: Path
) -> None:
    people = add_subscribers(topic, SUBSCRIBERS, frequency=DAILY)
    for index, person in enumerate(people):
        person.timezone = ZONES[index % len(ZONES)]
        person.digest_hour = (index * 7) % 24
    Subscriber.objects.bulk_update(people, ["timezone", "digest_hour"])
    # Something to read in every period: a publication every three hours of the last two days.
    for hours in range(1, 48, 3):
        publish(topic, NOW - dt.timedelta(hours=hours, minutes=10), f"Story {hours}")
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
        # Both workers send inline what they wrote; the sent journal is shared through files.
        "Q_SYNC": "true",
        "DELIVERY_JOURNAL_URL": f"file://{tmp_path / 'journal'}",
        "LOG_LEVEL": "WARNING",
        "TEST_QUIET_LOGGING": "true",
    }
    workers = [start_worker(tmp_path, name, environment) for name in ("a", "b")]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    (tmp_path / "go").touch()
    outputs = [worker.communicate(timeout=240) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    written = [int(out.split()[-1]) for out, _ in outputs]
    # Both really worked on the same subscribers at once: each wrote some, together all.
    assert sum(written) == SUBSCRIBERS
    assert min(written) > 0, written
    rows = list(Digest.objects.values_list("subscriber_id", "frequency", "period_end"))
    assert len(rows) == len({(s, f) for s, f, _ in rows}) == SUBSCRIBERS
    expected = {
        person.pk: latest_end(
            DAILY, Timing(zoneinfo.ZoneInfo(person.timezone), person.digest_hour or 0), NOW
        )
        for person in people
    }
    assert {subscriber: end for subscriber, _, end in rows} == expected
    assert Delivery.objects.filter(kind=Delivery.Kind.DIGEST).count() == SUBSCRIBERS
    assert Delivery.objects.filter(status=Delivery.Status.SENT).count() == SUBSCRIBERS
    assert len(sink.delivery_ids()) == SUBSCRIBERS
    assert set(sink.delivery_ids().values()) == {1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.postgres
def test_a_subscriber_busy_in_another_transaction_is_passed_over_then_written_by_the_next_run(
    smtp_channel: Channel, sink: SmtpSink, topic: Topic
) -> None:
    with connection.cursor() as cursor:
        # Waiting on the lock would fail the test instead of hanging it.
        cursor.execute("SET lock_timeout = '3s'")
    try:
        written_while_busy(smtp_channel, topic)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def written_while_busy(channel: Channel, topic: Topic) -> None:
    """The body of the test above (``channel`` is the enabled email channel)."""
    people = add_subscribers(topic, 3, frequency=DAILY)
    publish(topic, NOW - dt.timedelta(hours=5), "Story")
    busy = people[1]
    with psycopg.connect(database_url(), autocommit=False) as other:
        # Another run (or an edit of the subscriber) holds the row: this run does not wait.
        other.execute(
            f"SELECT id FROM {Subscriber._meta.db_table} WHERE id = %s FOR UPDATE", [busy.pk]
        )
        with time_machine.travel(NOW, tick=False):
            (report,) = send_digests(frequencies=[DAILY])
        assert report.created == 2
        assert not Digest.objects.filter(subscriber=busy).exists()
        other.rollback()
    with time_machine.travel(NOW + dt.timedelta(minutes=15), tick=False):
        (report,) = send_digests(frequencies=[DAILY])
    assert report.created == 1
    assert Digest.objects.filter(subscriber=busy).count() == 1
    assert Digest.objects.count() == 3
