"""The subscribers' link tokens never reach a log line: a real gunicorn, started as the
Dockerfile starts it (its CMD, read from the Dockerfile), under the production settings.

Tokens in /confirm/, /preferences/ and /unsubscribe/ URLs are credentials that never expire
(decision 0072): gunicorn's access log (request line, Referer) and Django's own request logging
("Bad Request: /preferences/...") must show ``[token]`` in their place.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from subscribers import tokens
from tests.config.test_settings import GOOD_SECRET_KEY, production_environment
from tests.conftest import REPO_ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def dockerfile_command(port: int) -> list[str]:
    """The Dockerfile's CMD, bound to a local port, one worker, run by this interpreter."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    command: list[str] = json.loads(re.findall(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)[-1])
    assert command[0] == "gunicorn"
    args = [f"127.0.0.1:{port}" if arg == "0.0.0.0:8000" else arg for arg in command[1:]]
    args[args.index("--workers") + 1] = "1"
    return [sys.executable, "-m", "gunicorn", *args]


def database_url() -> str:
    database = connection.settings_dict
    if connection.vendor != "postgresql":
        pytest.skip("the production settings need PostgreSQL")
    password = f":{database['PASSWORD']}" if database["PASSWORD"] else ""
    return (
        f"postgres://{database['USER']}{password}@{database['HOST'] or '127.0.0.1'}:"
        f"{database['PORT'] or 5432}/{database['NAME']}"
    )


def request(port: int, method: str, path: str, referer: str, body: bytes | None = None) -> int:
    # The load balancer terminates TLS and says so (the Dockerfile trusts forwarded headers).
    headers = {"X-Forwarded-Proto": "https", "Host": "news.example.org", "Referer": referer}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.postgres
@pytest.mark.django_db
def test_gunicorn_and_django_log_the_token_paths_redacted(tmp_path: Path) -> None:
    key = uuid.uuid4()
    # Signed with the server's key: the very tokens a subscriber's emails carry.
    with override_settings(SECRET_KEY=GOOD_SECRET_KEY):
        secrets = {
            "confirm": tokens.confirmation_token(424242, key),
            "preferences": tokens.manage_token(424242, key),
            "unsubscribe": tokens.unsubscribe_token(424242, key),
            "referer": tokens.manage_token(434343, key),
        }
    port = free_port()
    env = production_environment(
        ALLOWED_HOSTS="news.example.org,127.0.0.1",
        # The test database: its tables exist, and no subscriber matches.
        DATABASE_URL=database_url(),
        REDIS_URL="redis://127.0.0.1:6379/9",
        LOG_LEVEL="INFO",
        STATIC_ROOT=str(tmp_path / "static"),
    )
    # As the image is built (Dockerfile): the pages name the theme's stylesheet, which the
    # production storage looks up in collectstatic's manifest (decision 0073).
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    output = tmp_path / "gunicorn.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            dockerfile_command(port), cwd=REPO_ROOT, env=env, stdout=sink, stderr=sink
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        break
                except OSError:
                    assert process.poll() is None, output.read_text()
                    assert time.monotonic() < deadline, "gunicorn did not start"
                    time.sleep(0.2)
            referer = f"https://news.example.org/preferences/{secrets['referer']}/"
            statuses = [
                request(port, "GET", f"/confirm/{secrets['confirm']}/", referer),
                request(port, "GET", f"/preferences/{secrets['preferences']}/", referer),
                request(port, "GET", f"/unsubscribe/{secrets['unsubscribe']}/", referer),
                request(
                    port,
                    "POST",
                    f"/unsubscribe/{secrets['unsubscribe']}/",
                    referer,
                    b"List-Unsubscribe=One-Click",
                ),
            ]
        finally:
            process.terminate()
            process.wait(timeout=30)
    log = output.read_text()

    # No such subscriber: the pages say "not valid", unsubscribe says "you are unsubscribed".
    assert statuses == [400, 400, 200, 200], log
    for name, secret in secrets.items():
        # The signature is the secret part; the payload alone names a subscriber.
        assert secret not in log, name
        assert secret.rsplit(":", 1)[1] not in log, name
    access = [line for line in log.splitlines() if " HTTP/1.1" in line and '"GET ' in line]
    assert len(access) == 3, log
    for path in ("confirm", "preferences", "unsubscribe"):
        assert any(f"GET /{path}/[token]/ HTTP/1.1" in line for line in access), log
    assert all("https://news.example.org/preferences/[token]/" in line for line in access), log
    assert '"POST /unsubscribe/[token]/ HTTP/1.1"' in log
    # Django's own request logging (the 400s) goes through the same redaction.
    assert "Bad Request: /preferences/[token]/" in log
