from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_admin_login_is_rate_limited_per_ip_with_a_clear_429_page(client: Client) -> None:
    statuses = [
        client.post("/admin/login/", {"username": f"nobody{n}", "password": "wrong"}).status_code
        for n in range(11)
    ]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429
    response = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert b"Too many requests" in response.content


@pytest.mark.django_db
def test_admin_login_is_rate_limited_per_user_name_across_addresses(client: Client) -> None:
    for n in range(10):
        response = client.post(
            "/admin/login/",
            {"username": "admin", "password": "wrong"},
            REMOTE_ADDR=f"10.0.0.{n}",
        )
        assert response.status_code == 200
    response = client.post(
        "/admin/login/", {"username": "admin", "password": "wrong"}, REMOTE_ADDR="10.0.1.1"
    )
    assert response.status_code == 429


@pytest.mark.django_db
def test_api_docs_are_served_without_a_cdn(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger-ui" in response.content
    assert b"cdn.jsdelivr.net" not in response.content
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"openapi: 3" in schema.content
