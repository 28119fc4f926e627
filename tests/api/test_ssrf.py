"""SSRF through channels (decision 0071): a key holding channels:admin or webhooks:admin cannot
aim a channel at the machine, the private network or the metadata service, neither when the
channel is saved nor when a message leaves, and a test send never shows the peer's body. The
last tests drive the attack against the app under gunicorn with production settings."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.fernet import Fernet
from pytest_httpserver import HTTPServer

from channels.configuration import save_channel
from channels.models import Channel
from publishing.api_keys import create_api_key
from tests.api.conftest import ApiClient, KeyMaker
from tests.channels.cluster import database_url
from tests.conftest import REPO_ROOT

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: What an internal service would answer: it must never come back to the caller.
INTERNAL_BODY = "AccessKeyId=ASIAINTERNALKEY SecretAccessKey=internal-only-8f2b"
REFUSED_URLS = [
    "http://127.0.0.1:8000/admin/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0:8000/",
    "http://[::1]/",
    "http://[fe80::1]/",
    "http://[fc00::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:10.0.0.1]/",
    "http://224.0.0.1/",
    "http://localhost:8000/",
]


def webhook(url: str, name: str = "CRM") -> dict[str, Any]:
    return {"name": name, "kind": "webhook", "config": {"url": url}, "secrets": {"secret": SECRET}}


@pytest.fixture
def no_local_hosts(settings: Any) -> Any:
    """Production's setting: no host is let through the guard."""
    settings.OUTBOUND_ALLOWED_HOSTS = []
    return settings


@pytest.mark.django_db
@pytest.mark.parametrize("url", REFUSED_URLS)
def test_a_webhooks_key_cannot_aim_a_webhook_at_an_internal_address(
    make_key: KeyMaker, no_local_hosts: Any, url: str
) -> None:
    client = ApiClient(make_key("webhooks:admin"))

    response = client.post("/api/v1/channels/", webhook(url))

    assert response.status_code == 400, response.content
    [error] = response.json()["errors"]
    assert error["field"] == "url"
    assert "outbound requests go to public addresses only" in error["message"]
    assert not Channel.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("channel", "field"),
    [
        (
            {"kind": "slack", "config": {"mode": "webhook"}},
            {"webhook_url": "http://169.254.169.254/latest/meta-data/"},
        ),
        (
            {
                "kind": "slack",
                "config": {
                    "mode": "bot",
                    "channel": "#news",
                    "base_url": "http://10.0.0.1/api/",
                },
            },
            {"bot_token": "xoxb-1-2-abc"},
        ),
        ({"kind": "discord", "config": {}}, {"webhook_url": "http://[::ffff:127.0.0.1]/api/x"}),
    ],
)
def test_a_channels_key_cannot_aim_slack_or_discord_at_an_internal_address(
    make_key: KeyMaker,
    no_local_hosts: Any,
    channel: dict[str, Any],
    field: dict[str, str],
) -> None:
    client = ApiClient(make_key("channels:admin"))
    expected = "base_url" if "base_url" in channel["config"] else "webhook_url"

    response = client.post("/api/v1/channels/", {"name": "Chat", **channel, "secrets": field})

    assert response.status_code == 400, response.content
    assert [error["field"] for error in response.json()["errors"]] == [expected]
    assert not Channel.objects.exists()


PEER_CHANNELS = [
    ({"kind": "webhook", "config": {"url": "<peer>"}}, {"secret": SECRET}),
    ({"kind": "slack", "config": {"mode": "webhook"}}, {"webhook_url": "<peer>"}),
    ({"kind": "discord", "config": {}}, {"webhook_url": "<peer>"}),
]


def create_peer_channel(
    client: ApiClient, peer: str, channel: dict[str, Any], secrets: dict[str, str]
) -> int:
    """A channel of ``channel``'s kind whose URL is ``peer`` (the "<peer>" values)."""
    config = {k: peer if v == "<peer>" else v for k, v in channel["config"].items()}
    secrets = {k: peer if v == "<peer>" else v for k, v in secrets.items()}
    created = client.post(
        "/api/v1/channels/", {"name": "Peer", **channel, "config": config, "secrets": secrets}
    )
    assert created.status_code == 201, created.content
    channel_id: int = created.json()["id"]
    return channel_id


@pytest.mark.django_db
@pytest.mark.parametrize(("channel", "secrets"), PEER_CHANNELS)
def test_a_host_that_turns_internal_after_saving_is_refused_when_the_message_leaves(
    make_key: KeyMaker,
    settings: Any,
    httpserver: HTTPServer,
    channel: dict[str, Any],
    secrets: dict[str, str],
) -> None:
    # Saved while the name was allowed (as a DNS answer that was public then)...
    httpserver.expect_request("/hook").respond_with_data("ok")
    client = ApiClient(make_key("channels:admin"))
    channel_id = create_peer_channel(client, httpserver.url_for("/hook"), channel, secrets)
    # ...then it resolves to a refused address: the send checks again and connects nowhere.
    settings.OUTBOUND_ALLOWED_HOSTS = []

    response = client.post(f"/api/v1/channels/{channel_id}/test/", {})

    assert response.status_code == 200
    assert response.json()["status"] == "permanent"
    assert "a loopback address" in response.json()["error"]
    assert httpserver.log == []


@pytest.mark.django_db
@pytest.mark.parametrize(("channel", "secrets"), PEER_CHANNELS)
def test_the_test_endpoint_never_shows_the_peers_body(
    make_key: KeyMaker,
    httpserver: HTTPServer,
    channel: dict[str, Any],
    secrets: dict[str, str],
) -> None:
    httpserver.expect_request("/hook").respond_with_data(INTERNAL_BODY, status=500)
    client = ApiClient(make_key("channels:admin"))
    channel_id = create_peer_channel(client, httpserver.url_for("/hook"), channel, secrets)

    response = client.post(f"/api/v1/channels/{channel_id}/test/", {})

    assert response.status_code == 200
    assert len(httpserver.log) == 1
    assert "AccessKeyId" not in response.content.decode()
    assert response.json()["status"] == "transient"
    assert response.json()["error"] == "HTTP 500: the endpoint refused the message"


# --- Against a live gunicorn, with production settings ------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def live_gunicorn(settings: Any) -> Iterator[str]:
    """The app under gunicorn as the Dockerfile starts it, with production settings (no host
    let through the guard) on this test's database; yields its base URL."""
    key = Fernet.generate_key().decode()
    # The test saves channels with the same key the server decrypts them with.
    settings.FIELD_ENCRYPTION_KEYS = [key]
    port = _free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "SECRET_KEY": "k3Jx9-vQ2mZr7Lw0pT4sYb8NcHd1FgUe6Ai5Ko2Rj9Xq3Vn7Mt0Wz4Sy8Bu1Pc6Ld",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SITE_URL": "https://news.example.org",
        "DATABASE_URL": database_url(),
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        "FIELD_ENCRYPTION_KEYS": key,
        "SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            f"--bind=127.0.0.1:{port}",
            "--workers=1",
            "--forwarded-allow-ips=*",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"gunicorn did not start:\n{stderr[-3000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
@pytest.mark.postgres
def test_the_attack_fails_against_the_app_under_gunicorn(
    transactional_db: Any, live_gunicorn: str, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/").respond_with_data(INTERNAL_BODY, status=500)
    key = create_api_key(name="attacker", scopes=["webhooks:admin"]).key
    auth = {"Authorization": f"Bearer {key}"}
    # Allowed by this process's test settings (a name that was public when it was saved).
    saved = Channel(name="Saved earlier", kind="webhook")
    save_channel(saved, {"url": httpserver.url_for("/"), "secret": SECRET})

    refused = []
    for index, url in enumerate(
        [f"http://127.0.0.1:{httpserver.port}/", "http://169.254.169.254/latest/meta-data/"]
    ):
        response = requests.post(
            f"{live_gunicorn}/api/v1/channels/",
            json=webhook(url, name=f"Attack {index}"),
            headers=auth,
            timeout=10,
        )
        refused.append((response.status_code, [e["field"] for e in response.json()["errors"]]))
    sent = requests.post(
        f"{live_gunicorn}/api/v1/channels/{saved.pk}/test/", json={}, headers=auth, timeout=10
    )

    assert refused == [(400, ["url"]), (400, ["url"])]
    assert Channel.objects.count() == 1
    assert sent.status_code == 200, sent.text
    assert sent.json()["status"] == "permanent"
    assert "a loopback address" in sent.json()["error"]
    assert "AccessKeyId" not in sent.text
    assert httpserver.log == []
