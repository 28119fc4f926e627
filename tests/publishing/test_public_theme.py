"""The public theme, page by page in the test client: one stylesheet from the static files, the
site's name and a way to subscribe on every public page, Open Graph and canonical tags on
publication pages, and blocks an operator overrides from a folder of their own (docs/theming.md).
The browser half (320 px, dark mode, axe-core, screenshots) is tests/test_accessibility.py.
"""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse

from publishing import services as publishing_services
from publishing.models import Publication, Topic
from subscribers import services, tokens
from tests.conftest import REPO_ROOT
from tests.factories import PendingSubscriberFactory, SubscriberFactory, TopicFactory
from tests.publishing.conftest import make_publication

pytestmark = pytest.mark.django_db

STYLESHEET = "/static/publishing/theme.css"
SITE_URL = "https://news.example.org"


class Head(HTMLParser):
    """The <meta> and <link> tags of a page, and the inputs of its forms."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}
        self.links: list[dict[str, str]] = []
        self.inputs: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {key: value or "" for key, value in attrs}
        if tag == "meta" and "content" in values:
            self.meta[values.get("property") or values.get("name", "")] = values["content"]
        elif tag == "link":
            self.links.append(values)
        elif tag == "input":
            self.inputs.append(values)


def parse(response: Any) -> Head:
    head = Head()
    head.feed(response.content.decode())
    return head


def published(topics: list[Topic], **fields: Any) -> Publication:
    publication = make_publication(topics=topics, **fields)
    publishing_services.publish(publication, by=None)
    return publication


@pytest.fixture
def topic() -> Topic:
    return TopicFactory.create(name="Releases", slug="releases", description="Each version.")


@pytest.fixture
def publication(topic: Topic) -> Publication:
    return published([topic], slug="spring-release", title="Spring release")


def public_pages(publication: Publication, topic: Topic) -> dict[str, str]:
    """Every page a reader or a subscriber sees, by name."""
    reader = SubscriberFactory.create()
    pending = PendingSubscriberFactory.create()
    return {
        "home": "/",
        "archive": reverse("publishing:archive"),
        "publication": publication.get_absolute_url(),
        "topic": topic.get_absolute_url(),
        "signup": reverse("subscribers:signup"),
        "thanks": reverse("subscribers:signup_thanks"),
        "confirm": reverse(
            "subscribers:confirm", args=[tokens.confirmation_token(pending.pk, pending.token_key)]
        ),
        "preferences": reverse("subscribers:preferences", args=[services.manage_token_for(reader)]),
        "unsubscribe": reverse(
            "subscribers:unsubscribe", args=[services.unsubscribe_token_for(reader)]
        ),
        "erase": reverse("subscribers:erase", args=[services.manage_token_for(reader)]),
        "link-error": reverse("subscribers:confirm", args=["broken"]),
    }


@override_settings(SITE_NAME="The Widget Weekly")
def test_every_public_page_has_the_stylesheet_the_site_name_and_a_way_to_subscribe(
    client: Client, publication: Publication, topic: Topic
) -> None:
    for name, path in public_pages(publication, topic).items():
        response = client.get(path)
        body = response.content.decode()
        head = parse(response)

        assert response.status_code in {200, 400}, name
        stylesheets = [link["href"] for link in head.links if link.get("rel") == "stylesheet"]
        assert stylesheets == [STYLESHEET], name
        assert "<style" not in body, name  # one stylesheet, no page-local styles
        assert 'class="site-name"' in body and "The Widget Weekly" in body, name
        assert 'href="/subscribe/"' in body, name
        assert 'name="viewport"' in body, name


def test_the_archive_publication_topic_and_home_pages_carry_the_sign_up_form_unticked(
    client: Client, publication: Publication, topic: Topic
) -> None:
    TopicFactory.create(name="Events", slug="events")
    for path in ("/", "/p/", publication.get_absolute_url(), topic.get_absolute_url()):
        response = client.get(path)
        body = response.content.decode()
        topics = [field for field in parse(response).inputs if field.get("name") == "topics"]

        assert 'action="/subscribe/"' in body, path
        assert 'name="csrfmiddlewaretoken"' in body, path
        assert len(topics) == 2, path
        assert not [field for field in topics if "checked" in field], path
        assert body.count('id="id_email"') == 1, path  # one form per page: ids stay unique
        # The form's CSRF token: no copy is reused under another cookie.
        assert "Cookie" in response["Vary"], path


def test_the_stylesheet_is_a_static_file_with_a_dark_mode(client: Client) -> None:
    response = client.get(STYLESHEET)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    css = b"".join(response.streaming_content).decode()
    assert "@media (prefers-color-scheme: dark)" in css
    assert "--bg:" in css


@override_settings(SITE_URL=SITE_URL, SITE_NAME="The Widget Weekly")
def test_a_publication_page_has_open_graph_tags_and_an_absolute_canonical_link(
    client: Client, topic: Topic
) -> None:
    publication = published(
        [topic], slug="autumn", title="Autumn release", summary="Faster pages, fewer clicks."
    )

    head = parse(client.get(publication.get_absolute_url(), HTTP_HOST="127.0.0.1"))

    canonical = [link["href"] for link in head.links if link.get("rel") == "canonical"]
    assert canonical == [f"{SITE_URL}/p/autumn/"]
    assert head.meta["og:type"] == "article"
    assert head.meta["og:title"] == "Autumn release"
    assert head.meta["og:description"] == "Faster pages, fewer clicks."
    assert head.meta["og:url"] == f"{SITE_URL}/p/autumn/"
    assert head.meta["og:site_name"] == "The Widget Weekly"
    assert head.meta["description"] == "Faster pages, fewer clicks."
    assert head.meta["article:tag"] == "Releases"


def test_without_a_summary_the_description_is_the_opening_of_the_body(
    client: Client, topic: Topic
) -> None:
    publication = published(
        [topic],
        slug="no-summary",
        summary="",
        body="Our **new** release is out.\n\n" + "More words. " * 60,
    )

    description = parse(client.get(publication.get_absolute_url())).meta["og:description"]

    assert description.startswith("Our new release is out. More words.")
    assert len(description) <= 200
    assert description.endswith("…")


def test_code_blocks_and_tables_take_keyboard_focus_so_they_can_scroll(
    client: Client, topic: Topic
) -> None:
    publication = published(
        [topic], slug="code", body="```\nmake run\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n"
    )

    body = client.get(publication.get_absolute_url()).content.decode()

    assert '<pre tabindex="0">' in body
    assert '<table tabindex="0">' in body


OPERATOR_BASE = """{% extends "base.html" %}
{% block extra_head %}<meta name="theme" content="operator">{% endblock %}
{% block footer %}<footer id="operator-footer">Printed by the Widget Co-op</footer>{% endblock %}
"""


def test_a_template_in_the_operators_folder_overrides_the_themes_blocks(
    client: Client, publication: Publication, tmp_path: Path
) -> None:
    (tmp_path / "base.html").write_text(OPERATOR_BASE)
    theme: dict[str, Any] = settings.TEMPLATES[0]
    engine = {**theme, "DIRS": [tmp_path, *theme["DIRS"]]}

    with override_settings(TEMPLATES=[engine]):
        body = client.get(publication.get_absolute_url()).content.decode()
        home = client.get("/").content.decode()

    # The operator's blocks replace the theme's; everything else is still the theme's.
    for page in (body, home):
        assert '<footer id="operator-footer">Printed by the Widget Co-op</footer>' in page
        assert 'class="site-footer"' not in page
        assert '<meta name="theme" content="operator">' in page
        assert STYLESHEET in page
        assert 'class="site-name"' in page
    assert "<h1>Spring release</h1>" in body


def test_theme_templates_dir_puts_the_operators_folder_first(tmp_path: Path) -> None:
    script = "from django.conf import settings; print(settings.TEMPLATES[0]['DIRS'][0])"
    environment = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "THEME_TEMPLATES_DIR": str(tmp_path),
    }

    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    assert result.stdout.strip() == str(tmp_path)
