"""SQLite with a web process's commands and a worker at once (what `make run` does).

WAL, a busy timeout and IMMEDIATE write transactions (decision 0074) let an import, a worker
sending and the subscriber commands share one database file: every process waits its turn,
none fails with "database is locked", and what a lock still outlasts is retried or explained.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError

from tests.conftest import REPO_ROOT

IMPORTED_FIRST = 1_500
IMPORTED_DURING_THE_SEND = 3_000

COUNTS = """
import json
from django_q.models import Failure
from channels.models import Delivery
from subscribers.models import Subscriber
from django.db.models import Count
statuses = dict(Delivery.objects.values_list("status").annotate(n=Count("pk")))
print(json.dumps({
    "deliveries": statuses,
    "failed_tasks": [f"{f.func}: {f.result}" for f in Failure.objects.all()[:5]],
    "failed_task_count": Failure.objects.count(),
    "subscribers": Subscriber.objects.count(),
}))
"""


def sqlite_environment(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.dev",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "VAR_DIR": str(tmp_path),
            "EMAIL_OUTBOX_DIR": str(tmp_path / "outbox"),
            "LOG_FORMAT": "text",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(env: dict[str, str], *args: str) -> str:
    process = manage(env, *args)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"{args}: {err}"
    assert "locked" not in err and "Traceback" not in err, f"{args}: {err}"
    return out


def write_csv(path: Path, prefix: str, rows: int) -> Path:
    path.write_text(
        "email,name\n" + "".join(f"{prefix}{n}@example.com,P {n}\n" for n in range(rows))
    )
    return path


def counts(env: dict[str, str]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run(env, "shell", "-c", COUNTS).strip().splitlines()[-1])
    return result


def test_an_import_a_send_and_subscriber_commands_at_once_on_sqlite_make_no_error(
    tmp_path: Path,
) -> None:
    env = sqlite_environment(tmp_path)
    run(env, "migrate", "--no-input", "-v0")
    run(env, "load_demo")
    consent = ["--topics", "engineering", "--confirmed", "--consent-note", "test, 2026"]
    first = write_csv(tmp_path / "first.csv", "first", IMPORTED_FIRST)
    run(env, "import_subscribers", str(first), *consent, "--no-progress")
    before = counts(env)["subscribers"]

    log = tmp_path / "worker.log"
    with log.open("w") as worker_log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=REPO_ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # The worker sends the draft to the first import's subscribers while the second
        # import writes and an operator unsubscribes and looks people up.
        run(env, "publish", "delivery-engine-draft")
        second = write_csv(tmp_path / "second.csv", "second", IMPORTED_DURING_THE_SEND)
        importing = manage(env, "import_subscribers", str(second), *consent, "--no-progress")
        commands = []
        for n in range(6):
            commands.append(manage(env, "unsubscribe", f"first{n}@example.com"))
            commands.append(manage(env, "subscriber_status", f"second{n}@example.com"))
        for process in commands:
            out, err = process.communicate(timeout=300)
            assert process.returncode == 0, err
            assert "locked" not in err and "Traceback" not in err, err
        out, err = importing.communicate(timeout=300)
        assert importing.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
        assert (
            f"Rows read: {IMPORTED_DURING_THE_SEND}; created: {IMPORTED_DURING_THE_SEND}; "
            "updated: 0; skipped: 0" in out
        ), out

        deadline = time.monotonic() + 180
        state = counts(env)
        while time.monotonic() < deadline and (
            set(state["deliveries"]) - {"sent", "cancelled"} or not state["deliveries"]
        ):
            time.sleep(1)
            state = counts(env)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=15)

    assert state["failed_task_count"] == 0, state["failed_tasks"]
    assert set(state["deliveries"]) <= {"sent", "cancelled"}, state
    # The demo's engineering subscriber and the first import's, each accounted for.
    assert sum(state["deliveries"].values()) >= IMPORTED_FIRST
    assert state["subscribers"] == before + IMPORTED_DURING_THE_SEND
    worker_output = log.read_text()
    assert "locked" not in worker_output, worker_output[-3000:]
    assert "ERROR" not in worker_output, worker_output[-3000:]


# Outside a test transaction: inside one, nothing is retried (it is already broken).
@pytest.mark.django_db(transaction=True)
def test_unsubscribe_waits_out_a_short_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    from io import StringIO

    from subscribers import services

    calls = []
    real = services.subscriber_status

    def locked_once(email: str) -> Any:
        calls.append(email)
        if len(calls) == 1:
            raise OperationalError("database is locked")
        return real(email)

    monkeypatch.setattr(services, "subscriber_status", locked_once)
    monkeypatch.setattr("config.locks.LOCK_RETRY_DELAYS", (0.0,))
    out = StringIO()

    call_command("unsubscribe", "nobody@example.com", stdout=out)

    assert len(calls) == 2
    assert "now suppressed" in out.getvalue()


# Outside a test transaction: inside one, nothing is retried (it is already broken).
@pytest.mark.django_db(transaction=True)
def test_unsubscribe_explains_a_lock_that_lasts_instead_of_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from subscribers import services

    def locked(email: str) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(services, "subscriber_status", locked)
    monkeypatch.setattr("config.locks.LOCK_RETRY_DELAYS", (0.0, 0.0))

    with pytest.raises(CommandError, match="stayed locked by another process"):
        call_command("unsubscribe", "nobody@example.com")
