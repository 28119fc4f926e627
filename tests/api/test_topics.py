"""The topics API: create, rename (the slug stays), archive and unarchive, through
publishing.topics; an archived topic leaves the sign-up page and the archive's list and keeps
its subscriptions."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from publishing.models import Topic
from publishing.roles import EDITOR, PUBLISHER, assign_role_permissions
from subscribers.models import Subscription
from tests.api.conftest import ApiClient, KeyMaker
from tests.factories import (
    PublicationFactory,
    SubscriberFactory,
    SubscriptionFactory,
    TopicFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
SECURITY = {"name": "Security", "slug": "security", "description": "Advisories."}


def test_a_topic_is_created_and_offered_on_the_sign_up_page(api: ApiClient) -> None:
    response = api.post("/api/v1/topics/", SECURITY)
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["slug"], body["is_public"], body["archived_at"]) == (
        "Security",
        "security",
        True,
        None,
    )
    assert response["Location"] == f"/api/v1/topics/{body['id']}/"
    topic = Topic.objects.get()
    assert (topic.slug, topic.description, topic.archived_at) == ("security", "Advisories.", None)
    assert "Security" in Client().get("/subscribe/").content.decode()


def test_a_topic_with_a_taken_slug_or_name_is_refused_field_by_field(api: ApiClient) -> None:
    TopicFactory.create(slug="security", name="Old security")
    blank = api.post("/api/v1/topics/", {**SECURITY, "slug": "other", "name": " "})
    assert blank.status_code == 400
    assert [error["field"] for error in blank.json()["errors"]] == ["name"]
    response = api.post("/api/v1/topics/", {**SECURITY, "name": "Old security"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert sorted(error["field"] for error in response.json()["errors"]) == ["name", "slug"]
    assert list(Topic.objects.values_list("slug", flat=True)) == ["security"]


def test_renaming_a_topic_keeps_its_slug_and_refuses_a_new_one(api: ApiClient) -> None:
    topic = TopicFactory.create(slug="security", name="Security")
    url = f"/api/v1/topics/{topic.pk}/"
    renamed = api.patch(url, {"name": "Security advisories", "description": "CVEs."})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Security advisories"
    assert renamed.json()["slug"] == "security"
    moved = api.patch(url, {"slug": "advisories", "name": "Advisories"})
    assert moved.status_code == 400
    assert [error["field"] for error in moved.json()["errors"]] == ["slug"]
    topic.refresh_from_db()
    assert (topic.name, topic.slug, topic.description) == (
        "Security advisories",
        "security",
        "CVEs.",
    )
    assert api.put(url, SECURITY).status_code == 405
    assert api.delete(url).status_code == 405
    assert Topic.objects.filter(pk=topic.pk).exists()


def test_an_archived_topic_is_no_longer_offered_and_keeps_its_subscriptions(
    api: ApiClient,
) -> None:
    topic = TopicFactory.create(slug="security", name="Security")
    TopicFactory.create(slug="news", name="News")
    PublicationFactory.create(slug="advisory", topics=[topic], status="published")
    reader = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=reader, topic=topic)

    archived = api.post(f"/api/v1/topics/{topic.pk}/archive/")
    assert archived.status_code == 200
    assert archived.json()["archived_at"] is not None
    topic.refresh_from_db()
    first_archived_at = topic.archived_at
    assert first_archived_at is not None
    again = api.post(f"/api/v1/topics/{topic.pk}/archive/")
    assert again.status_code == 200
    topic.refresh_from_db()
    assert topic.archived_at == first_archived_at

    page = Client().get("/subscribe/").content.decode()
    assert "Security" not in page and "News" in page
    signup = Client().post(
        "/api/v1/subscribe",
        {"email": "new@example.com", "topics": ["security"]},
        content_type="application/json",
    )
    assert signup.status_code == 400
    assert not Subscription.objects.filter(subscriber__email="new@example.com").exists()
    index = Client().get("/p/").content.decode()
    assert 'href="/topics/security/"' not in index
    assert Client().get("/topics/security/").status_code == 200  # old links keep working
    assert Subscription.objects.filter(subscriber=reader, topic=topic).exists()
    listed = api.get("/api/v1/topics/", {"archived": "false"}).json()["results"]
    assert [row["slug"] for row in listed] == ["news"]

    unarchived = api.post(f"/api/v1/topics/{topic.pk}/unarchive/")
    assert unarchived.status_code == 200 and unarchived.json()["archived_at"] is None
    topic.refresh_from_db()
    assert topic.archived_at is None
    assert "Security" in Client().get("/subscribe/").content.decode()


def test_a_key_acts_within_its_owners_topic_rights(make_key: KeyMaker) -> None:
    assign_role_permissions()
    editor = UserFactory.create(username="ed", is_staff=False)
    editor.groups.add(Group.objects.get(name=EDITOR))
    publisher = UserFactory.create(username="pub", is_staff=False)
    publisher.groups.add(Group.objects.get(name=PUBLISHER))
    refused = ApiClient(make_key("publications:write", owner=editor)).post(
        "/api/v1/topics/", SECURITY
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert not Topic.objects.exists()
    created = ApiClient(make_key("publications:write", owner=publisher)).post(
        "/api/v1/topics/", SECURITY
    )
    assert created.status_code == 201
    topic = Topic.objects.get()
    assert topic.history.first().history_user == publisher


def test_creating_a_topic_twice_with_one_idempotency_key_creates_it_once(
    api: ApiClient, settings: Any
) -> None:
    first = api.post("/api/v1/topics/", SECURITY, **{"Idempotency-Key": "t1"})
    again = api.post("/api/v1/topics/", SECURITY, **{"Idempotency-Key": "t1"})
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Topic.objects.count() == 1


def test_an_archived_topic_takes_no_new_subscribers_but_keeps_its_own(api: ApiClient) -> None:
    topic = TopicFactory.create(slug="security", name="Security", archived_at="2026-01-01T00:00Z")
    news = TopicFactory.create(slug="news", name="News")
    reader = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=reader, topic=topic)
    newcomer = api.post(
        "/api/v1/subscribers/",
        {"email": "new@example.com", "topics": ["security"], "consent_note": "Form"},
    )
    assert newcomer.status_code == 400
    assert [error["field"] for error in newcomer.json()["errors"]] == ["topics"]
    kept = api.patch(f"/api/v1/subscribers/{reader.pk}/", {"topics": ["security", "news"]})
    assert kept.status_code == 200
    assert kept.json()["topics"] == ["news", "security"]
    assert set(Subscription.objects.filter(subscriber=reader).values_list("topic", flat=True)) == {
        topic.pk,
        news.pk,
    }
    other = SubscriberFactory.create()
    SubscriptionFactory.create(subscriber=other, topic=news)
    joined = api.patch(f"/api/v1/subscribers/{other.pk}/", {"topics": ["security"]})
    assert joined.status_code == 400
    assert list(Subscription.objects.filter(subscriber=other).values_list("topic", flat=True)) == [
        news.pk
    ]


def test_an_archived_topic_takes_no_new_publication_but_keeps_its_own(api: ApiClient) -> None:
    archived = TopicFactory.create(slug="security", name="Security")
    news = TopicFactory.create(slug="news", name="News")
    kept = PublicationFactory.create(slug="kept", topics=[archived])
    assert api.post(f"/api/v1/topics/{archived.pk}/archive/").status_code == 200
    body = {"title": "New", "slug": "new", "body": "Text.", "topics": ["security", "news"]}

    refused = api.post("/api/v1/publications/", body)

    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert error["field"] == "topics"
    assert error["message"].startswith("Archived topic: security.")
    assert not kept.__class__.objects.filter(slug="new").exists()
    # A publication that already had the topic keeps it through an edit...
    edit = {"title": "Kept", "slug": "kept", "body": "Edited.", "topics": ["security", "news"]}
    assert api.put(f"/api/v1/publications/{kept.pk}/", edit).status_code == 200
    assert set(kept.topics.values_list("slug", flat=True)) == {"security", "news"}
    # ...but one that did not have it cannot gain it.
    other = PublicationFactory.create(slug="other", topics=[news])
    gained = api.put(
        f"/api/v1/publications/{other.pk}/",
        {"title": "Other", "slug": "other", "body": "Text.", "topics": ["security"]},
    )
    assert gained.status_code == 400
    assert list(other.topics.values_list("slug", flat=True)) == ["news"]
