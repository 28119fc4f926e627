"""Problem details, conditional requests, idempotent POSTs and throttles, through real DRF views."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils.http import http_date

from publishing.models import Topic
from tests.config import api_urls
from tests.factories import TopicFactory, UserFactory

pytestmark = [pytest.mark.urls("tests.config.api_urls"), pytest.mark.django_db]


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def post(client: Client, url: str, data: dict[str, Any], **headers: str) -> Any:
    return client.post(url, data, content_type="application/json", headers=headers)


def test_a_validation_error_is_a_problem_document_naming_the_field_and_the_limit(
    client: Client,
) -> None:
    response = post(client, "/api/test/topics/", {"name": "x" * 101, "slug": "ok"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 400
    assert body["code"] == "validation_error"
    assert body["type"].endswith("/validation_error")
    assert body["instance"] == "/api/test/topics/"
    assert body["errors"] == [
        {
            "field": "name",
            "message": "Ensure this field has no more than 100 characters.",
            "code": "max_length",
        }
    ]
    assert not Topic.objects.exists()


@pytest.mark.parametrize(
    ("method", "url", "status", "code"),
    [
        ("get", "/api/test/topics/999999/", 404, "not_found"),
        ("get", "/api/no-such-endpoint/", 404, "not_found"),
        ("put", "/api/test/throttled/", 405, "method_not_allowed"),
    ],
)
def test_errors_outside_validation_are_problem_documents_too(
    client: Client, method: str, url: str, status: int, code: str
) -> None:
    response = getattr(client, method)(url)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert response.json()["status"] == status


def test_an_unexpected_error_is_a_500_problem_that_leaks_nothing() -> None:
    client = Client(raise_request_exception=False)
    response = client.get("/api/test/boom/")
    assert response.status_code == 500
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["detail"] == "An unexpected error occurred."
    assert b"jane@example.com" not in response.content


def test_throttled_requests_get_429_with_retry_after(client: Client) -> None:
    statuses = [client.get("/api/test/throttled/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/test/throttled/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["code"] == "throttled"


def test_a_read_carries_an_etag_and_last_modified_and_answers_304_when_unchanged(
    client: Client,
) -> None:
    topic = TopicFactory.create()
    first = client.get(f"/api/test/topics/{topic.pk}/")
    assert first.status_code == 200
    etag = first["ETag"]
    assert etag.startswith('"')
    assert first["Last-Modified"] == http_date(topic.updated_at.timestamp())
    again = client.get(f"/api/test/topics/{topic.pk}/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    since = client.get(
        f"/api/test/topics/{topic.pk}/", headers={"If-Modified-Since": first["Last-Modified"]}
    )
    assert since.status_code == 304
    listing = client.get("/api/test/topics/")
    assert (
        client.get("/api/test/topics/", headers={"If-None-Match": listing["ETag"]}).status_code
        == 304
    )


def test_a_write_with_a_stale_if_match_is_refused_with_412_and_changes_nothing(
    client: Client,
) -> None:
    topic = TopicFactory.create(name="Original")
    etag = client.get(f"/api/test/topics/{topic.pk}/")["ETag"]
    first = client.patch(
        f"/api/test/topics/{topic.pk}/",
        {"name": "First editor"},
        content_type="application/json",
        headers={"If-Match": etag},
    )
    assert first.status_code == 200
    second = client.patch(
        f"/api/test/topics/{topic.pk}/",
        {"name": "Second editor"},
        content_type="application/json",
        headers={"If-Match": etag},
    )
    assert second.status_code == 412
    assert second.json()["code"] == "precondition_failed"
    topic.refresh_from_db()
    assert topic.name == "First editor"


def test_the_same_idempotency_key_and_body_replays_the_answer_without_acting_again(
    client: Client,
) -> None:
    body = {"name": "Science", "slug": "science"}
    first = post(client, "/api/test/topics/", body, **{"Idempotency-Key": "k-1"})
    second = post(client, "/api/test/topics/", body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Topic.objects.filter(slug="science").count() == 1


def test_the_same_idempotency_key_with_another_body_answers_422(client: Client) -> None:
    post(client, "/api/test/topics/", {"name": "A", "slug": "a"}, **{"Idempotency-Key": "k-2"})
    response = post(
        client, "/api/test/topics/", {"name": "B", "slug": "b"}, **{"Idempotency-Key": "k-2"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert list(Topic.objects.values_list("slug", flat=True)) == ["a"]


def test_an_invalid_request_does_not_use_up_its_idempotency_key(client: Client) -> None:
    wrong = post(client, "/api/test/topics/", {"name": "", "slug": "s"}, **{"Idempotency-Key": "k"})
    assert wrong.status_code == 400
    assert not Topic.objects.exists()
    body = {"name": "Science", "slug": "science"}
    corrected = post(client, "/api/test/topics/", body, **{"Idempotency-Key": "k"})
    assert corrected.status_code == 201
    assert "Idempotent-Replayed" not in corrected
    replay = post(client, "/api/test/topics/", body, **{"Idempotency-Key": "k"})
    assert replay.status_code == 201 and replay["Idempotent-Replayed"] == "true"
    assert list(Topic.objects.values_list("slug", flat=True)) == ["science"]


def test_a_refusal_after_a_change_began_is_replayed_not_run_again(client: Client) -> None:
    first = post(client, "/api/test/half-done/", {}, **{"Idempotency-Key": "h"})
    again = post(client, "/api/test/half-done/", {}, **{"Idempotency-Key": "h"})
    assert first.status_code == again.status_code == 409
    assert again["Idempotent-Replayed"] == "true"
    assert list(Topic.objects.values_list("slug", flat=True)) == ["half-0"]


def test_idempotency_keys_are_scoped_to_the_caller() -> None:
    alice, bob = Client(), Client()
    alice.force_login(UserFactory.create(username="alice"))
    bob.force_login(UserFactory.create(username="bob"))
    first = post(
        alice, "/api/test/topics/", {"name": "A", "slug": "a"}, **{"Idempotency-Key": "same"}
    )
    second = post(
        bob, "/api/test/topics/", {"name": "A2", "slug": "a2"}, **{"Idempotency-Key": "same"}
    )
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert Topic.objects.count() == 2


def test_a_request_arriving_while_the_first_with_its_key_runs_answers_409(client: Client) -> None:
    api_urls.slow_request_started.clear()
    api_urls.slow_request_release.clear()
    results: dict[str, int] = {}

    def first_request() -> None:
        results["first"] = post(
            Client(), "/api/test/slow/", {}, **{"Idempotency-Key": "k-3"}
        ).status_code

    thread = threading.Thread(target=first_request)
    thread.start()
    assert api_urls.slow_request_started.wait(timeout=10)
    try:
        second = post(client, "/api/test/slow/", {}, **{"Idempotency-Key": "k-3"})
        assert second.status_code == 409
        assert second.json()["code"] == "idempotency_in_progress"
    finally:
        api_urls.slow_request_release.set()
        thread.join(timeout=10)
    assert results["first"] == 201
    replay = post(client, "/api/test/slow/", {}, **{"Idempotency-Key": "k-3"})
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"


def test_an_over_long_idempotency_key_is_a_field_error(client: Client) -> None:
    response = post(
        client, "/api/test/topics/", {"name": "A", "slug": "a"}, **{"Idempotency-Key": "k" * 256}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    assert not Topic.objects.exists()
