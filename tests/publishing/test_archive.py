"""The public archive and feeds: what is public, and conditional requests answered 304."""

from __future__ import annotations

from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from publishing import services
from publishing.models import Publication, Topic
from tests.factories.publishing import TopicFactory
from tests.publishing.conftest import make_publication

pytestmark = pytest.mark.django_db

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def published(paula: User, topic: Topic) -> Publication:
    publication = make_publication(
        by=paula, topics=[topic], body="Hello <script>alert(1)</script>**world**"
    )
    services.publish(publication, by=paula)
    return publication


def test_a_published_publication_has_a_public_page(client: Client, published: Publication) -> None:
    response = client.get(f"/p/{published.slug}/")

    assert response.status_code == 200
    body = response.content.decode()
    assert "<h1>Spring release</h1>" in body
    assert "<strong>world</strong>" in body
    assert "<script>alert" not in body
    assert 'href="/topics/releases/"' in body
    assert response["ETag"]
    assert response["Last-Modified"]


@pytest.mark.parametrize("status", ["draft", "scheduled", "archived"])
def test_a_publication_that_is_not_published_answers_404(
    client: Client, paula: User, topic: Topic, status: str
) -> None:
    publication = make_publication(by=paula, topics=[topic])
    if status == "scheduled":
        services.schedule(publication, timezone.now() + timedelta(days=1), by=paula)
    if status == "archived":
        services.publish(publication, by=paula)
        services.archive(publication, by=paula)

    response = client.get(f"/p/{publication.slug}/")

    assert Publication.objects.get(pk=publication.pk).status == status
    assert response.status_code == 404
    assert "ETag" not in response


def test_the_page_answers_304_to_a_matching_etag_or_date_and_200_after_a_change(
    client: Client, published: Publication, paula: User
) -> None:
    url = f"/p/{published.slug}/"
    first = client.get(url)

    by_etag = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    by_date = client.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    services.update_publication(
        published,
        services.PublicationInput(
            title="Corrected",
            slug=published.slug,
            body=published.body,
            topics=list(published.topics.all()),
        ),
        by=paula,
    )
    after_change = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert by_etag.status_code == 304
    assert by_etag.content == b""
    assert by_date.status_code == 304
    assert after_change.status_code == 200
    assert after_change["ETag"] != first["ETag"]
    assert b"Corrected" in after_change.content


def test_topic_pages_list_published_publications_of_public_topics_only(
    client: Client, paula: User, topic: Topic, published: Publication
) -> None:
    make_publication(by=paula, topics=[topic], slug="still-a-draft", title="Draft title")
    private = TopicFactory.create(name="Internal", slug="internal", is_public=False)
    hidden = make_publication(by=paula, topics=[private], slug="internal-memo", title="Memo")
    services.publish(hidden, by=paula)

    page = client.get("/topics/releases/")
    private_page = client.get("/topics/internal/")
    index = client.get("/p/")

    assert page.status_code == 200
    assert [p.slug for p in page.context["page"]] == [published.slug]
    assert b"Draft title" not in page.content
    assert private_page.status_code == 404
    assert [p.slug for p in index.context["page"]] == [published.slug]
    assert client.get("/p/internal-memo/").status_code == 200  # linked from its emails
    assert client.get("/topics/nope/").status_code == 404


def test_topic_pages_answer_304_until_something_changes(
    client: Client, paula: User, topic: Topic, published: Publication
) -> None:
    first = client.get("/topics/releases/")

    unchanged = client.get("/topics/releases/", HTTP_IF_NONE_MATCH=first["ETag"])
    by_date = client.get("/topics/releases/", HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    second = make_publication(by=paula, topics=[topic], slug="second")
    services.publish(second, by=paula)
    changed = client.get("/topics/releases/", HTTP_IF_NONE_MATCH=first["ETag"])

    assert unchanged.status_code == 304
    assert by_date.status_code == 304
    assert changed.status_code == 200
    assert len(changed.context["page"]) == 2


@pytest.mark.parametrize("url", ["/feeds/rss/", "/topics/releases/rss/"])
def test_rss_feeds_list_published_publications(
    client: Client, published: Publication, paula: User, topic: Topic, url: str
) -> None:
    make_publication(by=paula, topics=[topic], slug="draft-two", title="Unpublished")

    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/rss+xml")
    # Our own feed, parsed in a test: no untrusted XML here.
    channel = ElementTree.fromstring(response.content).find("channel")  # noqa: S314
    assert channel is not None
    items = channel.findall("item")
    assert [item.findtext("title") for item in items] == ["Spring release"]
    assert items[0].findtext("link") == "http://testserver/p/spring-release/"
    description = items[0].findtext("description") or ""
    assert "<strong>world</strong>" in description and "<script" not in description
    assert items[0].findtext("category") == "Releases"


@pytest.mark.parametrize("url", ["/feeds/atom/", "/topics/releases/atom/"])
def test_atom_feeds_list_published_publications(
    client: Client, published: Publication, url: str
) -> None:
    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = ElementTree.fromstring(response.content)  # noqa: S314
    entries = feed.findall(f"{ATOM}entry")
    assert [entry.findtext(f"{ATOM}title") for entry in entries] == ["Spring release"]
    assert feed.findtext(f"{ATOM}subtitle")


@pytest.mark.parametrize(
    "url", ["/feeds/rss/", "/feeds/atom/", "/topics/releases/rss/", "/topics/releases/atom/"]
)
def test_feeds_answer_304_to_a_matching_conditional_request(
    client: Client, published: Publication, paula: User, url: str
) -> None:
    first = client.get(url)

    by_etag = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])
    by_date = client.get(url, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    services.archive(published, by=paula)
    after = client.get(
        url, HTTP_IF_NONE_MATCH=first["ETag"], HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]
    )

    assert first.status_code == 200
    assert by_etag.status_code == 304
    assert by_date.status_code == 304
    assert after.status_code == 200
    assert b"Spring release" not in after.content


def test_rss_and_atom_have_different_etags(client: Client, published: Publication) -> None:
    assert client.get("/feeds/rss/")["ETag"] != client.get("/feeds/atom/")["ETag"]


def test_a_feed_of_an_unknown_or_private_topic_answers_404(client: Client, paula: User) -> None:
    TopicFactory.create(name="Internal", slug="internal", is_public=False)

    assert client.get("/topics/internal/rss/").status_code == 404
    assert client.get("/topics/nope/atom/").status_code == 404


def test_the_archive_refuses_unsafe_methods(client: Client, published: Publication) -> None:
    assert client.post(f"/p/{published.slug}/").status_code == 405
    assert client.post("/feeds/rss/").status_code == 405


@pytest.mark.parametrize(
    "url", ["/feeds/rss/", "/topics/releases/atom/", "/topics/releases/", "/p/"]
)
def test_lists_and_feeds_make_the_same_queries_for_two_or_six_publications(
    client: Client, paula: User, topic: Topic, url: str
) -> None:
    def publish(count: int) -> None:
        for _ in range(count):
            slug = f"p-{Publication.objects.count()}"
            publication = make_publication(
                by=paula, topics=[topic, TopicFactory.create()], slug=slug
            )
            services.publish(publication, by=paula)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    publish(2)
    with_two = queries()
    publish(4)

    assert queries() == with_two
