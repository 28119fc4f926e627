"""Shared fixtures. App-specific fixtures live in tests/<app>/conftest.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import override_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip PostgreSQL-only tests when the suite runs on SQLite."""
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))


@pytest.fixture(autouse=True)
def fresh_render_caches() -> Iterator[None]:
    """Rendering caches live per process; each test starts without what another rendered,
    and its claims start from the queue's start (decision 0092)."""
    from channels import tracking
    from channels.engine import claims, messages
    from publishing import rendering

    claims.forget_positions()
    rendering.clear_cache()
    messages._rendered.clear()
    messages._versions.clear()
    tracking._LINKS.clear()
    yield


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def output_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder for this test's artefacts (screenshots), under test-output/."""
    path = REPO_ROOT / "test-output" / request.node.name
    path.mkdir(parents=True, exist_ok=True)
    yield path


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A Playwright page in Debian's Chromium.

    Skips with the reason when Chromium is absent, unless REQUIRE_BROWSER=1 (set by .ci/run),
    which turns that skip into a failure. Playwright's sync API runs an event loop in this
    thread, so Django's async-safety guard is lifted for this test only.
    """
    if not CHROMIUM.exists():
        message = "Chromium not installed at /usr/bin/chromium (apt-get install -y chromium)"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page()
        try:
            yield page
        finally:
            browser.close()


REDIS = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


@pytest.fixture
def redis_cache() -> Iterator[None]:
    """The default cache on the real Redis (a database of its own, a prefix per test)."""
    settings = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS,
            "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
        }
    }
    with override_settings(CACHES=settings):
        try:
            cache.get("ping")
        except Exception as error:  # pragma: no cover - depends on the machine
            pytest.skip(f"Redis not reachable at {REDIS}: {error}")
        yield
        cache.clear()


REBINDING_HOST = "rebind.example"
PUBLIC_ADDRESS = "93.184.216.34"


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A DNS rebinding attack on ``rebind.example``: its first lookup answers a public address
    (so the outbound guard's check passes), every later one answers 127.0.0.1, where the
    test's peer listens. Only the resolver is replaced; other names resolve as usual.

    Returns the list of answers given, in order.
    """
    import socket

    real_getaddrinfo = socket.getaddrinfo
    answers: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != REBINDING_HOST:
            return real_getaddrinfo(host, port, *args, **kwargs)
        address = PUBLIC_ADDRESS if not answers else "127.0.0.1"
        answers.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port or 80)))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers
