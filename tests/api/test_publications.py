"""The publications API: validation with limits, conditional reads and writes, idempotent
creation, drafts, publishing, scheduling, versions, restore and statistics."""

from __future__ import annotations

import hashlib
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone

from channels.models import Delivery
from publishing.models import Dispatch, Publication
from publishing.roles import EDITOR, assign_role_permissions
from tests.api.conftest import ApiClient, KeyMaker
from tests.factories import (
    DeliveryFactory,
    DispatchFactory,
    PublicationFactory,
    TopicFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
DRAFT = {"title": "Autumn", "slug": "autumn", "body": "# Hello", "topics": ["news"]}


@pytest.fixture(autouse=True)
def news() -> Any:
    return TopicFactory.create(slug="news")


def test_it_creates_a_draft_with_its_first_version(api: ApiClient) -> None:
    response = api.post("/api/v1/publications/", DRAFT)
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "draft" and body["topics"] == ["news"]
    assert response["Location"] == f"/api/v1/publications/{body['id']}/"
    publication = Publication.objects.get()
    assert publication.slug == "autumn"
    assert publication.history.count() == 1


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"title": "x" * 201}, "title", "200"),
        ({"summary": "x" * 501}, "summary", "500"),
        ({"body": "x" * 100_001}, "body", "100000"),
        ({"topics": []}, "topics", "1"),
        ({"topics": [f"t{i}" for i in range(51)]}, "topics", "50"),
        ({"topics": ["nope"]}, "topics", "nope"),
        ({"slug": "not a slug"}, "slug", "slug"),
        ({"language": "xx"}, "language", "xx"),
    ],
)
def test_bad_input_is_a_problem_naming_the_field_and_nothing_is_stored(
    api: ApiClient, change: dict[str, Any], field: str, fragment: str
) -> None:
    response = api.post("/api/v1/publications/", {**DRAFT, **change})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert {error["field"] for error in errors} == {field}
    assert fragment in " ".join(error["message"] for error in errors)
    assert not Publication.objects.exists()


def test_a_taken_slug_is_named(api: ApiClient) -> None:
    PublicationFactory.create(slug="autumn")
    response = api.post("/api/v1/publications/", DRAFT)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "slug"
    assert Publication.objects.count() == 1


def test_lists_filter_by_status_and_topic(api: ApiClient) -> None:
    other = TopicFactory.create(slug="other")
    PublicationFactory.create(slug="a", topics=[other])
    PublicationFactory.create(slug="b", status="published")
    response = api.get("/api/v1/publications/", {"status": "published"})
    assert [row["slug"] for row in response.json()["results"]] == ["b"]
    response = api.get("/api/v1/publications/", {"topic": "other"})
    assert [row["slug"] for row in response.json()["results"]] == ["a"]
    assert api.get("/api/v1/publications/", {"status": "nope"}).status_code == 400
    # Filters still apply beside pagination parameters (which alone skip the FilterSet).
    paged = api.get("/api/v1/publications/", {"status": "published", "page_size": 1, "page": 1})
    assert [row["slug"] for row in paged.json()["results"]] == ["b"]
    assert len(api.get("/api/v1/publications/", {"page_size": 5}).json()["results"]) == 2


def test_the_etag_is_the_hash_of_the_json_sent_and_if_match_accepts_it(api: ApiClient) -> None:
    publication = PublicationFactory.create(slug="p")
    url = f"/api/v1/publications/{publication.pk}/"
    read = api.get(url)
    assert read["ETag"] == '"' + hashlib.sha256(read.content).hexdigest()[:32] + '"'
    # The browsable API (HTML) names the same representation with the same ETag.
    html = api.get(url, Accept="text/html")
    assert html.status_code == 200 and html["ETag"] == read["ETag"]
    changed = api.patch(url, {"summary": "New"}, **{"If-Match": read["ETag"]})
    assert changed.status_code == 200


def test_reads_send_an_etag_and_last_modified_and_answer_304(api: ApiClient) -> None:
    publication = PublicationFactory.create(slug="p")
    url = f"/api/v1/publications/{publication.pk}/"
    first = api.get(url)
    assert first.status_code == 200
    etag, modified = first["ETag"], first["Last-Modified"]
    assert api.get(url, **{"If-None-Match": etag}).status_code == 304
    assert api.get(url, **{"If-Modified-Since": modified}).status_code == 304
    list_etag = api.get("/api/v1/publications/")["ETag"]
    assert api.get("/api/v1/publications/", **{"If-None-Match": list_etag}).status_code == 304


def test_a_stale_if_match_answers_412_and_keeps_the_other_editors_change(
    api: ApiClient,
) -> None:
    created = api.post("/api/v1/publications/", DRAFT).json()
    url = f"/api/v1/publications/{created['id']}/"
    etag = api.get(url)["ETag"]
    first = api.patch(url, {"title": "First editor"}, **{"If-Match": etag})
    assert first.status_code == 200
    second = api.patch(url, {"title": "Second editor"}, **{"If-Match": etag})
    assert second.status_code == 412
    assert second.json()["code"] == "precondition_failed"
    assert Publication.objects.get().title == "First editor"
    fresh = api.get(url)["ETag"]
    assert api.patch(url, {"title": "Second"}, **{"If-Match": fresh}).status_code == 200


def test_the_same_idempotency_key_replays_the_answer_without_creating_twice(
    api: ApiClient,
) -> None:
    first = api.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "abc"})
    again = api.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert Publication.objects.count() == 1
    other = api.post("/api/v1/publications/", {**DRAFT, "slug": "x"}, **{"Idempotency-Key": "abc"})
    assert other.status_code == 422
    assert Publication.objects.count() == 1


def test_a_request_refused_before_any_change_does_not_use_up_its_idempotency_key(
    api: ApiClient,
) -> None:
    wrong = api.post(
        "/api/v1/publications/", {**DRAFT, "topics": ["nope"]}, **{"Idempotency-Key": "k1"}
    )
    assert wrong.status_code == 400
    assert Publication.objects.count() == 0
    corrected = api.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "k1"})
    assert corrected.status_code == 201
    assert "Idempotent-Replayed" not in corrected
    replay = api.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "k1"})
    assert replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == corrected.json()
    assert Publication.objects.count() == 1


def test_idempotency_keys_belong_to_the_api_key_that_sent_them(make_key: KeyMaker) -> None:
    alice, bob = ApiClient(make_key()), ApiClient(make_key())
    alice.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "same"})
    response = bob.post(
        "/api/v1/publications/", {**DRAFT, "slug": "bobs"}, **{"Idempotency-Key": "same"}
    )
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response
    assert Publication.objects.count() == 2


def test_updates_record_one_version_each_and_restore_appends_one(api: ApiClient) -> None:
    created = api.post("/api/v1/publications/", DRAFT).json()
    url = f"/api/v1/publications/{created['id']}/"
    replaced = api.put(url, {**DRAFT, "title": "Winter", "change_reason": "Season"})
    assert replaced.status_code == 200 and replaced.json()["title"] == "Winter"
    versions = api.get(url + "versions/").json()["results"]
    assert [(v["number"], v["title"], v["reason"]) for v in versions] == [
        (2, "Winter", "Season"),
        (1, "Autumn", "Created"),
    ]
    assert versions[0]["topics"] == ["news"]
    restored = api.post(url + "versions/1/restore/")
    assert restored.status_code == 200
    assert restored.json()["title"] == "Autumn"
    assert Publication.objects.get().history.count() == 3
    missing = api.post(url + "versions/9/restore/")
    assert missing.status_code == 400
    assert missing.json()["errors"][0]["field"] == "number"


def test_a_draft_can_be_deleted_and_a_published_one_cannot(
    api: ApiClient, django_capture_on_commit_callbacks: Any
) -> None:
    draft = PublicationFactory.create(slug="d")
    assert api.delete(f"/api/v1/publications/{draft.pk}/").status_code == 204
    assert not Publication.objects.filter(pk=draft.pk).exists()
    created = api.post("/api/v1/publications/", DRAFT).json()
    with django_capture_on_commit_callbacks(execute=False):
        api.post(f"/api/v1/publications/{created['id']}/publish/")
    refused = api.delete(f"/api/v1/publications/{created['id']}/")
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_a_draft"
    assert Publication.objects.filter(pk=created["id"]).exists()


def test_publishing_twice_creates_one_dispatch(
    api: ApiClient, django_capture_on_commit_callbacks: Any
) -> None:
    created = api.post("/api/v1/publications/", DRAFT).json()
    url = f"/api/v1/publications/{created['id']}/publish/"
    with django_capture_on_commit_callbacks(execute=False):
        first = api.post(url)
        second = api.post(url)
    assert first.status_code == second.status_code == 200
    assert first.json()["dispatch_id"] == second.json()["dispatch_id"]
    assert first.json()["publication"]["status"] == "published"
    assert Dispatch.objects.count() == 1


def test_it_schedules_and_unschedules(api: ApiClient) -> None:
    created = api.post("/api/v1/publications/", DRAFT).json()
    url = f"/api/v1/publications/{created['id']}/"
    at = (timezone.now() + timedelta(days=1)).isoformat()
    response = api.post(url + "schedule/", {"publish_at": at})
    assert response.status_code == 200 and response.json()["status"] == "scheduled"
    past = api.post(url + "schedule/", {"publish_at": "2001-01-01T00:00:00Z"})
    assert past.status_code == 400
    assert past.json()["errors"][0]["field"] == "publish_at"
    assert Publication.objects.get().status == "scheduled"
    assert api.post(url + "unschedule/").json()["status"] == "draft"
    again = api.post(url + "unschedule/")
    assert again.status_code == 409
    assert again.json()["code"] == "not_scheduled"


def test_stats_count_deliveries_by_status(api: ApiClient) -> None:
    publication = PublicationFactory.create(slug="s", status="published")
    dispatch = DispatchFactory.create(publication=publication)
    for status in ("sent", "sent", "dead"):
        DeliveryFactory.create(dispatch=dispatch, status=status)
    body = api.get(f"/api/v1/publications/{publication.pk}/stats/").json()
    assert body["dispatches"] == 1
    assert body["deliveries"]["sent"] == 2 and body["deliveries"]["dead"] == 1
    assert body["total"] == 3 == Delivery.objects.count()


def test_a_key_acts_as_its_owner_and_never_beyond_the_owners_rights(
    make_key: KeyMaker, django_capture_on_commit_callbacks: Any
) -> None:
    assign_role_permissions()
    alice = UserFactory.create(username="alice", is_staff=False)
    alice.groups.add(Group.objects.get(name=EDITOR))
    client = ApiClient(make_key("publications:write", "publications:publish", owner=alice))
    created = client.post("/api/v1/publications/", DRAFT)
    assert created.status_code == 201
    assert Publication.objects.get().author == alice
    with django_capture_on_commit_callbacks(execute=False):
        refused = client.post(f"/api/v1/publications/{created.json()['id']}/publish/")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert Publication.objects.get().status == "draft"


@pytest.mark.django_db(transaction=True)
def test_a_second_request_with_a_key_still_running_answers_409(
    api: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from publishing import services

    started, release = threading.Event(), threading.Event()
    original = services.create_publication

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(services, "create_publication", slow)
    results: list[int] = []

    def first_request() -> None:
        try:
            response = api.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "k"})
            results.append(response.status_code)
        finally:
            connection.close()

    worker = threading.Thread(target=first_request)
    worker.start()
    assert started.wait(5)
    second = api.post("/api/v1/publications/", DRAFT, **{"Idempotency-Key": "k"})
    release.set()
    worker.join(5)
    assert second.status_code == 409
    assert second.json()["code"] == "idempotency_in_progress"
    assert results == [201]
    assert Publication.objects.count() == 1


def test_an_absurd_page_number_is_a_404_not_a_database_error(api: ApiClient) -> None:
    PublicationFactory.create(slug="only")
    response = api.get("/api/v1/publications/", {"page": str(10**30)})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert api.get("/api/v1/publications/", {"page": "2"}).status_code == 404
    assert api.get("/api/v1/publications/", {"page": "1"}).json()["count"] == 1


def test_stats_carry_the_engagement_funnel_links_and_hours(api: ApiClient) -> None:
    from datetime import timedelta

    from channels import engagement, tracking
    from channels.models import EngagementEvent

    publication = PublicationFactory.create(slug="engaged", status="published")
    dispatch = DispatchFactory.create(publication=publication)
    reader, scanned = (
        DeliveryFactory.create(dispatch=dispatch, status="sent", sent_at=dispatch.created_at)
        for _ in range(2)
    )
    tracking.store_links(dispatch.version_id, "email", ["https://example.org/a"])
    browser = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15"
    for delivery, kind, user_agent in (
        (reader, "open", browser),
        (reader, "click", browser),
        (scanned, "click", "python-requests/2.31.0"),
    ):
        EngagementEvent.objects.create(
            delivery=delivery,
            kind=kind,
            link_index=0 if kind == "click" else None,
            occurred_at=dispatch.created_at + timedelta(hours=3),
            method="GET",
            user_agent=user_agent,
        )
    engagement.classify_pending(now=dispatch.created_at + timedelta(days=1))

    body = api.get(f"/api/v1/publications/{publication.pk}/stats/").json()

    funnel = body["funnel"]
    assert (funnel["targeted"], funnel["sent"], funnel["delivered"]) == (2, 2, 2)
    assert (funnel["opened_human"], funnel["clicked_human"], funnel["machine_clicks"]) == (1, 1, 1)
    assert body["rates"]["opened_human"] == 0.5
    assert body["links"] == [
        {
            "url": "https://example.org/a",
            "surface": "email",
            "position": 0,
            "version": dispatch.version_id,
            "human": 1,
            "machine": 1,
        }
    ]
    assert body["hours"]["clicks_human"][3] == 1
    assert len(body["hours"]["opens_human"]) == 72
