"""`/`: the archive with a subscribe form, in the test client and in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from publishing import services
from publishing.models import Publication
from subscribers.models import Subscriber
from tests.factories.publishing import TopicFactory
from tests.publishing.conftest import make_publication


def published(slug: str, title: str) -> Publication:
    topic = TopicFactory.create(name="Releases", slug="releases")
    publication = make_publication(topics=[topic], slug=slug, title=title)
    services.publish(publication, by=None)
    return publication


@pytest.mark.django_db
def test_the_home_page_lists_the_archive_beside_a_subscribe_form(client: Client) -> None:
    publication = published("spring-release", "Spring release")
    draft = make_publication(slug="secret-draft", title="Secret draft")

    response = client.get("/")

    assert response.status_code == 200
    body = response.content.decode()
    assert f'href="{publication.get_absolute_url()}"' in body
    assert "Spring release" in body
    assert draft.title not in body
    assert 'action="/subscribe/"' in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert 'name="email"' in body
    assert 'value="releases"' in body or "Releases" in body
    assert 'href="/p/"' in body


@pytest.mark.django_db
def test_the_home_page_says_so_when_nothing_is_published(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert "Nothing published yet." in response.content.decode()


@pytest.fixture
def close_connections() -> Iterator[None]:
    """Close connections outside Playwright's event loop once the browser is gone."""
    yield
    connections.close_all()


@pytest.mark.browser
def test_a_person_subscribes_from_the_home_page_in_a_browser(
    close_connections: None,
    live_server: Any,
    transactional_db: None,
    browser_page: Any,
    output_dir: Path,
) -> None:
    published("spring-release", "Spring release")
    page = browser_page

    page.goto(f"{live_server.url}/")
    page.wait_for_selector("text=Spring release")
    page.screenshot(path=str(output_dir / "home.png"), full_page=True)
    page.fill("input[name=email]", "home.page@example.com")
    page.fill("input[name=name]", "Home Page")
    page.check("text=Releases")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")

    assert page.url.startswith(f"{live_server.url}/subscribe/thanks/")
    subscriber = Subscriber.objects.get()
    assert subscriber.status == Subscriber.Status.PENDING
    assert list(subscriber.subscriptions.values_list("topic__slug", flat=True)) == ["releases"]
    connections.close_all()
