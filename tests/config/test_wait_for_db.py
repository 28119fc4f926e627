from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command

from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.django_db
def test_it_reports_ready_against_the_live_database() -> None:
    out = StringIO()
    call_command("wait_for_db", "--timeout", "5", stdout=out)
    assert "Database ready after 1 attempt(s)." in out.getvalue()


def test_it_gives_up_at_its_deadline_when_nothing_listens() -> None:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{free_port()}/nowhere"
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "wait_for_db",
            "--timeout",
            "1.5",
            "--initial-delay",
            "0.1",
            "--max-delay",
            "0.4",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert "Database 'default' not reachable after 1.5 s" in result.stderr
    assert "Connection refused" in result.stderr
    assert 1.4 <= elapsed < 15
    retries = [line for line in result.stderr.splitlines() if "retrying in" in line]
    # Backoff doubles up to its cap: 0.1, 0.2, 0.4, 0.4...
    assert retries[0].endswith("retrying in 0.10 s")
    assert retries[1].endswith("retrying in 0.20 s")
    assert retries[2].endswith("retrying in 0.40 s")
