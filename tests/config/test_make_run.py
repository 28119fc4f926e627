"""What `make run` does: load demo data with an admin account, then start web and worker."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from channels.models import Channel, Delivery
from publishing.models import Dispatch, Publication, Topic
from subscribers.models import Subscriber
from tests.conftest import REPO_ROOT


@pytest.mark.django_db
def test_load_demo_creates_the_demo_and_an_admin_whose_password_is_printed_once(
    settings: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    settings.EMAIL_OUTBOX_DIR = tmp_path / "outbox"
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("load_demo", stdout=out)
    match = re.search(r"User name: admin\s+Password: (\S+)", out.getvalue())
    assert match, out.getvalue()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(match.group(1))
    assert Topic.objects.count() == 3
    assert set(Publication.objects.values_list("status", flat=True)) == {
        "published",
        "scheduled",
        "draft",
    }
    assert Subscriber.objects.filter(status="active").count() == 5
    channel = Channel.objects.get(kind="email_file")
    assert channel.is_default_email
    assert channel.config["directory"] == str(tmp_path / "outbox")
    # Tasks run inline in tests: the welcome publication went to its 3 immediate subscribers.
    dispatch = Dispatch.objects.get(publication__slug="welcome")
    assert dispatch.deliveries.filter(status=Delivery.Status.SENT).count() == 3
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3

    again = StringIO()
    call_command("load_demo", stdout=again)
    assert "Password" not in again.getvalue()
    assert "Demo data already present" in again.getvalue()
    assert Topic.objects.count() == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_run_dev_starts_web_and_worker_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.dev", "VAR_DIR": str(tmp_path)})
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True, timeout=120)
    port = free_port()
    process = subprocess.Popen(
        [*manage, "run_dev", "--addr", f"127.0.0.1:{port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ready = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    ready = r.status
                    break
            except OSError:
                time.sleep(0.5)
        assert ready == 200, "web server up, migrations applied and a worker heartbeat seen"
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"Home (archive):  http://127.0.0.1:{port}/\n" in output
    assert f"http://127.0.0.1:{port}/admin/" in output
    assert f"http://127.0.0.1:{port}/api/docs/" in output
    assert f"http://127.0.0.1:{port}/subscribe/" in output
    assert "Stopped the web server and the worker." in output
    leftovers = subprocess.run(
        ["pgrep", "-f", f"runserver 127.0.0.1:{port}"], capture_output=True, text=True
    )
    assert leftovers.stdout.strip() == ""


def descendants(pid: int) -> set[int]:
    """The pids of every live process under `pid` (children, grandchildren...)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        result = subprocess.run(
            ["pgrep", "-P", str(frontier.pop())], capture_output=True, text=True, check=False
        )
        for line in result.stdout.split():
            found.add(int(line))
            frontier.append(int(line))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    # A zombie waiting for its (dead) parent to reap it has ended all the same.
    return not (status.exists() and "State:\tZ" in status.read_text())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_run_dev_children_end_when_run_dev_is_killed_with_sigkill(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.dev", "VAR_DIR": str(tmp_path)})
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True, timeout=120)
    port = free_port()
    process = subprocess.Popen(
        [*manage, "run_dev", "--addr", f"127.0.0.1:{port}"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        children = descendants(process.pid)
        assert len(children) >= 3, "runserver, its reloaded server and qcluster"
    finally:
        process.kill()
        process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.2)
    left = {pid for pid in children if alive(pid)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == set(), "children outlived run_dev"


def test_development_logs_are_text_and_production_logs_json() -> None:
    code = (
        "import django, logging; django.setup();"
        " logging.getLogger('probe').warning('hello from the probe')"
    )
    env = {key: value for key, value in os.environ.items() if key != "LOG_FORMAT"}
    dev = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.dev"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.search(r"WARNING \[-\] probe: hello from the probe", dev.stdout), dev.stdout
    prod = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.prod", "DEBUG": "true"},
        capture_output=True,
        text=True,
        check=True,
    )
    line = json.loads(prod.stdout.strip().splitlines()[-1])
    assert line["message"] == "hello from the probe"
