"""Problem details for 404, 405, 415, 429 and 500 on the real API; rate limits per key and per
IP with Retry-After; CORS closed by default, opened only to the allowlist from the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from config.api.throttles import IPRateThrottle, KeyRateThrottle
from tests.api.conftest import ApiClient, KeyMaker

pytestmark = pytest.mark.django_db
REPO = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize(
    ("method", "url", "status", "code"),
    [
        ("GET", "/api/v1/publications/999999/", 404, "not_found"),
        ("GET", "/api/v1/nothing-here/", 404, "not_found"),
        ("PUT", "/api/v1/publications/", 405, "method_not_allowed"),
        ("DELETE", "/api/v1/deliveries/1/", 405, "method_not_allowed"),
    ],
)
def test_errors_are_problem_documents(
    api: ApiClient, method: str, url: str, status: int, code: str
) -> None:
    response = api.request(method, url)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_a_body_that_is_not_json_gets_415(api: ApiClient) -> None:
    response = api.client.post(
        "/api/v1/publications/",
        "title=x",
        content_type="text/plain",
        headers={"Authorization": f"Bearer {api.key}"},
    )
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_a_server_error_is_a_problem_that_leaks_nothing(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publishing import api as publishing_api

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database password hunter2")

    monkeypatch.setattr(publishing_api.PublicationViewSet, "get_queryset", broken)
    response = api.get("/api/v1/publications/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert b"hunter2" not in response.content


def test_each_key_has_its_own_rate_limit_with_retry_after(
    make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(KeyRateThrottle, "rate", "2/min", raising=False)
    busy, quiet = ApiClient(make_key()), ApiClient(make_key())
    assert [busy.get("/api/v1/topics/").status_code for _ in range(3)] == [200, 200, 429]
    limited = busy.get("/api/v1/topics/")
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert limited["Content-Type"] == "application/problem+json"
    assert quiet.get("/api/v1/topics/").status_code == 200


def test_each_client_ip_has_a_rate_limit_whatever_its_keys(
    make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(IPRateThrottle, "rate", "3/min", raising=False)
    statuses = [ApiClient(make_key()).get("/api/v1/topics/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_cors_is_closed_by_default(api: ApiClient) -> None:
    response = api.get("/api/v1/topics/", Origin="https://evil.example")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    preflight = Client().options(
        "/api/v1/topics/",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "Access-Control-Allow-Origin" not in preflight


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example"])
def test_cors_opens_to_the_allowlist_only(api: ApiClient) -> None:
    allowed = api.get("/api/v1/topics/", Origin="https://app.example")
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example"
    other = api.get("/api/v1/topics/", Origin="https://evil.example")
    assert "Access-Control-Allow-Origin" not in other
    preflight = Client().options(
        "/api/v1/publications/",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, idempotency-key",
        },
    )
    assert preflight["Access-Control-Allow-Origin"] == "https://app.example"
    assert "idempotency-key" in preflight["Access-Control-Allow-Headers"]
    assert "ETag" in allowed["Access-Control-Expose-Headers"]
    outside = api.get("/healthz", Origin="https://app.example")
    assert "Access-Control-Allow-Origin" not in outside


def test_the_allowlist_comes_from_the_environment() -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "CORS_ALLOWED_ORIGINS": "https://a.example,https://b.example",
    }
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.CORS_ALLOWED_ORIGINS)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "['https://a.example', 'https://b.example']"


@pytest.mark.parametrize("cache_backend", ["local memory", "redis"])
def test_a_flood_of_wrong_keys_meets_the_per_ip_limit(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, cache_backend: str
) -> None:
    if cache_backend == "redis":
        request.getfixturevalue("redis_cache")
    monkeypatch.setattr(IPRateThrottle, "rate", "3/min", raising=False)
    statuses = [
        ApiClient(f"pk_guess{n:03d}_{'x' * 43}").get("/api/v1/topics/").status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
