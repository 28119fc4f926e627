"""Fixtures for the API tests: keys with chosen scopes, and a client that sends them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from publishing.api_keys import create_api_key
from publishing.models import ApiScope

ALL_SCOPES = list(ApiScope.values)
KeyMaker = Callable[..., str]


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    # Throttle counters and idempotency records must not leak between tests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_key(db: Any) -> KeyMaker:
    def make(*scopes: str, owner: User | None = None, expires_at: datetime | None = None) -> str:
        return create_api_key(
            name="test key", scopes=scopes or ALL_SCOPES, owner=owner, expires_at=expires_at
        ).key

    return make


class ApiClient:
    """Django's test client speaking JSON with a bearer key."""

    def __init__(self, key: str | None = None) -> None:
        self.client = Client(raise_request_exception=False)
        self.key = key

    def request(self, method: str, url: str, data: Any = None, **headers: str) -> Any:
        if self.key:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        call = getattr(self.client, method.lower())
        if method.upper() in {"GET", "HEAD"}:
            return call(url, data or {}, headers=headers)
        return call(url, data or {}, content_type="application/json", headers=headers)

    def get(self, url: str, data: Any = None, **headers: str) -> Any:
        return self.request("GET", url, data, **headers)

    def post(self, url: str, data: Any = None, **headers: str) -> Any:
        return self.request("POST", url, data, **headers)

    def put(self, url: str, data: Any = None, **headers: str) -> Any:
        return self.request("PUT", url, data, **headers)

    def patch(self, url: str, data: Any = None, **headers: str) -> Any:
        return self.request("PATCH", url, data, **headers)

    def delete(self, url: str, **headers: str) -> Any:
        return self.request("DELETE", url, None, **headers)


@pytest.fixture
def api(make_key: KeyMaker) -> ApiClient:
    """A client holding a key with every scope, acting as the system."""
    return ApiClient(make_key())


@pytest.fixture
def api_as() -> Callable[[str | None], ApiClient]:
    return ApiClient
