"""Rendering: golden files, XSS vectors in every channel, placeholders, sanitising, the cache.

The XSS vectors come from the OWASP XSS Filter Evasion Cheat Sheet (one per line in
tests/fixtures/xss/owasp_vectors.txt), plus a few Markdown-specific ones.
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import User
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publishing import rendering, services
from publishing.exceptions import PublishingError, UnknownChannelKindError
from publishing.models import Publication
from publishing.rendering import NAME, PREFERENCES_URL, UNSUBSCRIBE_URL
from tests.factories.publishing import TopicFactory
from tests.publishing.conftest import make_publication

GOLDEN = Path(__file__).parent / "golden"
VECTORS = (
    (Path(__file__).parent.parent / "fixtures" / "xss" / "owasp_vectors.txt")
    .read_text()
    .splitlines()
)
SAFE_SCHEMES = ("http://", "https://", "mailto:")
# Tags the email template itself uses around the sanitised body.
TEMPLATE_TAGS = {"html", "head", "meta", "title", "body", "div", "style"}
DANGEROUS_RAW = (
    "<script", "<iframe", "<object", "<embed", "<svg", "<math", "<form", "<base", "<link",
    "<frame", "<input", "<body onload", "<meta http-equiv", "<bgsound",
)  # fmt: skip

GOLDEN_BODY = """\
## What changed

Version **2.0** ships with _faster_ delivery, ~~no~~ fewer bugs and `retry` support.

1. Upgrade the workers
2. Run the [migrations](https://example.org/docs/migrate?step=1&force=no)

- Slack and Discord
- Webhooks, signed

> Deliver every message exactly once.

```
python manage.py migrate
```

| Channel | Status |
|---|---|
| Email | ready |

![Diagram](https://example.org/diagram.png)

See [the archive](/p/) --- and write to <mailto:team@example.org>.
"""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {name: value or "" for name, value in attrs}))


def assert_safe_html(html: str, *, document: bool = False) -> None:
    """No executable content: allowlisted tags, no handlers, only http(s)/mailto URLs."""
    lowered = html.lower()
    for needle in DANGEROUS_RAW:
        assert needle not in lowered, needle
    collector = _Collector()
    collector.feed(html)
    allowed = set(rendering.ALLOWED_TAGS) | (TEMPLATE_TAGS if document else set())
    for tag, attrs in collector.tags:
        assert tag in allowed, tag
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, name)
            assert "javascript" not in value.lower(), (tag, name, value)
            assert "vbscript" not in value.lower(), (tag, name, value)
            if name in ("href", "src"):
                assert value.startswith(SAFE_SCHEMES) or value in rendering.PLACEHOLDERS, value
            if name == "style":
                assert document, "author content may not carry a style attribute"
                assert "url(" not in value and "expression" not in value, value
            if tag == "meta":
                assert "http-equiv" not in attrs


def assert_safe_slack(payload: dict[str, Any]) -> None:
    """Slack reads <...> in mrkdwn (and the fallback text) as links and mentions."""
    for text in [payload.get("text", ""), *_mrkdwn(payload)]:
        for target in re.findall(r"<([^>]*)>", text):
            assert target.startswith(SAFE_SCHEMES), target
    for block in payload["blocks"]:
        for element in block.get("elements", []):
            if "url" in element:
                assert element["url"].startswith(("http://", "https://"))


def assert_safe_discord(payload: dict[str, Any]) -> None:
    assert payload["allowed_mentions"] == {"parse": []}
    embed = payload["embeds"][0]
    assert embed["url"].startswith(("http://", "https://"))
    for target in re.findall(r"(?<!\\)\]\(([^)]*)\)", embed["description"]):
        assert target.startswith(SAFE_SCHEMES), target
    for target in re.findall(r"(?<!\\)<([^>]*)>", embed["description"]):
        assert target.startswith(SAFE_SCHEMES), target


def assert_safe_text(text: str, sanitised_html: str) -> None:
    """Plain text is inert; it must show only what the sanitised HTML shows as text.

    Every "<" in the text is one the sanitised HTML holds escaped as text ("&lt;"): no
    markup the sanitiser dropped comes back through the text alternative.
    """
    assert text.count("<") <= sanitised_html.count("&lt;")
    assert "alert(document.cookie)" not in text  # attribute values never leak as text


def _mrkdwn(value: Any) -> list[str]:
    if isinstance(value, dict):
        own = [value["text"]] if value.get("type") == "mrkdwn" else []
        return own + [s for item in value.values() for s in _mrkdwn(item)]
    if isinstance(value, list):
        return [s for item in value for s in _mrkdwn(item)]
    return []


def test_there_are_at_least_thirty_vectors() -> None:
    assert len([v for v in VECTORS if v.strip()]) >= 30


@pytest.mark.django_db
def test_a_body_of_owasp_vectors_renders_with_no_executable_content_in_any_channel(
    paula: User,
) -> None:
    # Alt text is required (saving refuses an image without it): each image vector gets one,
    # and stays the same attack.
    body = re.sub(r"<img\b", '<img alt="vector"', "\n\n".join(VECTORS), flags=re.IGNORECASE)
    title, summary = '<script>alert("t")</script>', "<img src=x onerror=1>"
    publication = make_publication(by=paula, body=body, title=title, summary=summary)
    services.publish(publication, by=paula)
    version = publication.history.order_by("-history_id").first()

    email = rendering.render_email(version)
    assert_safe_html(email.html, document=True)
    assert "&lt;script&gt;alert" in email.html  # the title is shown, escaped
    html, _text = email.personalize(
        name='<img src=x onerror="alert(1)">',
        preferences_url="https://x/p",
        unsubscribe_url="u",
        more_url="https://x/m",
        less_url="https://x/l",
    )
    assert_safe_html(html.replace('href="u"', 'href="https://x/u"'), document=True)
    # text/plain shows the title and summary as typed, which is inert; the body must be clean.
    body_html = rendering.render_body_html(version)
    assert_safe_text(email.text.replace(title, "").replace(summary, ""), body_html)
    assert_safe_slack(rendering.render_slack(version))
    assert_safe_discord(rendering.render_discord(version))
    webhook = rendering.render_webhook(version)
    assert_safe_html(webhook["data"]["html"])
    assert_safe_text(webhook["data"]["text"], webhook["data"]["html"])
    assert "body" not in webhook["data"]  # raw Markdown is never sent
    assert_safe_html(rendering.render_body_html(version))


@pytest.mark.parametrize("vector", VECTORS)
def test_each_vector_alone_is_neutralised(vector: str) -> None:
    html = rendering.markdown_to_html(vector)

    assert_safe_html(html)
    assert_safe_slack({"blocks": [{"type": "mrkdwn", "text": rendering.html_to_slack(html)}]})
    assert_safe_text(rendering.html_to_text(html), html)


def test_links_get_rel_noopener_and_relative_links_point_at_the_site() -> None:
    with override_settings(SITE_URL="https://news.example.org"):
        html = rendering.markdown_to_html("[a](https://example.com/) [b](/p/x/)")

    assert '<a href="https://example.com/" rel="noopener noreferrer">a</a>' in html
    assert 'href="https://news.example.org/p/x/"' in html


def _golden(name: str, content: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(content)
    assert content == path.read_text(), f"{name} differs from its golden file (UPDATE_GOLDEN=1)"


@pytest.mark.django_db
@override_settings(SITE_URL="https://news.example.org", SITE_NAME="Example News")
def test_each_channel_renders_the_golden_publication(paula: User) -> None:
    topics = [
        TopicFactory.create(name="Releases", slug="releases"),
        TopicFactory.create(name="Engineering", slug="engineering"),
    ]
    with time_machine.travel("2026-05-04 10:30:00Z", tick=False):
        publication = make_publication(
            by=paula,
            topics=topics,
            title="Version 2.0 is out",
            slug="version-2-0",
            summary="Faster delivery & fewer bugs.",
            body=GOLDEN_BODY,
        )
        services.publish(publication, by=paula)
    version = publication.history.order_by("-history_id").first()

    email = rendering.render_email(version)
    assert email.subject == "Version 2.0 is out"
    _golden("email.html", email.html)
    _golden("email.txt", email.text)
    _golden("slack.json", json.dumps(rendering.render_slack(version), indent=2) + "\n")
    _golden("discord.json", json.dumps(rendering.render_discord(version), indent=2) + "\n")
    webhook = rendering.render_webhook(version)
    assert webhook["data"]["id"] == publication.pk
    assert webhook["data"]["version"] == 2  # created, then published: its second version
    webhook["data"]["id"] = 0  # ids differ between databases
    _golden("webhook.json", json.dumps(webhook, indent=2) + "\n")


@pytest.mark.django_db
def test_the_email_html_has_its_css_inlined(draft: Publication) -> None:
    email = rendering.render_email(draft)

    assert "<style" not in email.html
    assert re.search(r'<h1 style="[^"]*font-size: ?26px', email.html)


@pytest.mark.django_db
def test_author_content_cannot_inject_a_placeholder(paula: User) -> None:
    sneaky = [
        "[[[name]]]",
        "&#91;[[unsubscribe_url]]]",
        "[[<span></span>[preferences_url]]]",
        "[[[[name]]]]",
        "`[[[unsubscribe_url]]]`",
        "[x]([[[unsubscribe_url]]])",
        "<a href='[[[unsubscribe_url]]]'>x</a>",
    ]
    publication = make_publication(
        by=paula, title="[[[name]]]", summary="[[[preferences_url]]]", body="\n\n".join(sneaky)
    )

    email = rendering.render_email(publication)

    # Only the template's own placeholders remain: one greeting and one link each.
    assert email.html.count(NAME) == 1
    assert email.html.count(PREFERENCES_URL) == 1
    assert email.html.count(UNSUBSCRIBE_URL) == 1
    assert email.text.count(NAME) == 1
    assert email.text.count(PREFERENCES_URL) == 1
    assert email.text.count(UNSUBSCRIBE_URL) == 1
    html, text = email.personalize(
        name="Bob", preferences_url="https://s/prefs", unsubscribe_url="https://s/unsub"
    )
    assert html.count("Bob") == 1 and text.count("Bob") == 1
    assert html.count("https://s/unsub") == 1 and text.count("https://s/unsub") == 1


@pytest.mark.django_db
def test_personal_parts_are_escaped_in_html_and_filled_without_rendering_again(
    draft: Publication, django_assert_num_queries: Any
) -> None:
    email = rendering.render_email(draft)

    with django_assert_num_queries(0):
        html, text = rendering.render_email(draft).personalize(
            name="<b>Eve</b> & co", preferences_url="https://s/p?a=1&b=2", unsubscribe_url="u"
        )
    assert "Hello &lt;b&gt;Eve&lt;/b&gt; &amp; co," in html
    assert 'href="https://s/p?a=1&amp;b=2"' in html
    assert "Hello <b>Eve</b> & co," in text
    assert rendering.render_email(draft) is email


@pytest.mark.django_db
def test_an_email_to_a_subscriber_without_a_name_says_hello_without_a_gap(
    draft: Publication,
) -> None:
    email = rendering.render_email(draft)

    html, text = email.personalize(name=" ", preferences_url="p", unsubscribe_url="u")

    assert text.startswith("Hello,\n")
    assert ">Hello,</p>" in html
    assert "Hello ," not in html + text and "Hello there" not in html + text
    assert NAME not in html + text


@pytest.mark.django_db
def test_a_french_email_to_a_subscriber_without_a_name_says_bonjour_without_a_gap(
    paula: User,
) -> None:
    email = rendering.render_email(make_publication(by=paula, language="fr"))

    html, text = email.personalize(name="", preferences_url="p", unsubscribe_url="u")
    named_html, named_text = email.personalize(name="Zoé", preferences_url="p", unsubscribe_url="u")

    assert text.startswith("Bonjour,\n") and ">Bonjour,</p>" in html
    assert named_text.startswith("Bonjour Zoé,\n") and ">Bonjour Zoé,</p>" in named_html


@pytest.mark.django_db
def test_rendering_is_cached_per_version_and_channel_and_is_deterministic(
    paula: User, django_assert_num_queries: Any
) -> None:
    publication = make_publication(by=paula)
    first = publication.history.get()
    data = services.PublicationInput(
        title="Changed", slug=publication.slug, body="New", topics=list(publication.topics.all())
    )
    services.update_publication(publication, data, by=paula)
    second = publication.history.order_by("-history_id").first()

    slack_first = rendering.render_slack(first)
    with django_assert_num_queries(0):
        assert rendering.render_slack(first) == slack_first
    assert rendering.render_slack(second)["text"] == "Changed"
    assert slack_first["text"] == "Spring release"  # the old version still renders as it was
    webhook = rendering.render_webhook(second)
    webhook["data"]["title"] = "mutated by a caller"
    assert rendering.render_webhook(second)["data"]["title"] == "Changed"
    email = rendering.render_email(second)
    rendering.clear_cache()
    assert rendering.render_email(second) == email
    assert rendering.render_slack(first) == slack_first


@pytest.mark.django_db
def test_the_cache_follows_a_live_publication_after_each_save(
    draft: Publication, alice: User
) -> None:
    before = rendering.render_slack(draft)["text"]
    services.update_publication(
        draft,
        services.PublicationInput(
            title="Renamed", slug=draft.slug, body=draft.body, topics=list(draft.topics.all())
        ),
        by=alice,
    )

    assert before == "Spring release"
    assert rendering.render_slack(draft)["text"] == "Renamed"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("email_smtp", rendering.EmailTemplate),
        ("email_ses", rendering.EmailTemplate),
        ("email_file", rendering.EmailTemplate),
        ("slack", dict),
        ("discord", dict),
        ("webhook", dict),
    ],
)
def test_it_renders_for_every_channel_kind(draft: Publication, kind: str, expected: type) -> None:
    assert isinstance(rendering.render_for_kind(draft, kind), expected)


@pytest.mark.django_db
def test_an_unknown_channel_kind_is_a_publishing_error_and_a_key_error(draft: Publication) -> None:
    with pytest.raises(UnknownChannelKindError) as caught:
        rendering.render_for_kind(draft, "carrier_pigeon")

    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, PublishingError)
    assert caught.value.field == "kind"
    assert "carrier_pigeon" in str(caught.value)


@pytest.mark.django_db
def test_slack_and_discord_respect_their_size_limits(paula: User) -> None:
    body = "\n\n".join(f"Paragraph {n} " + "word " * 200 for n in range(60))
    publication = make_publication(by=paula, title="T" * 200, body=body)

    slack = rendering.render_slack(publication)
    discord = rendering.render_discord(publication)

    assert len(slack["blocks"]) <= 50
    assert len(slack["blocks"][0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"] if b["type"] == "section")
    assert "Read the rest online" in json.dumps(slack)
    embed = discord["embeds"][0]
    assert len(embed["description"]) <= 4096
    assert len(embed["title"]) <= 256
    assert len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"]) <= 6000


def test_slack_escapes_mentions_and_discord_escapes_markdown() -> None:
    html = rendering.markdown_to_html("Hi <!channel> & @everyone &lt;@123&gt; \\*x\\*\n\n    <b>")

    slack = rendering.html_to_slack(html)
    discord = rendering.html_to_discord(html)

    assert "<!channel>" not in slack
    assert "&amp;" in slack
    assert "&lt;@123&gt;" in slack
    assert "```\n&lt;b&gt;\n```" in slack
    assert "\\<@123>" in discord
    assert "\\*x\\*" in discord
    assert "@everyone" in discord  # shown, but allowed_mentions keeps it from pinging


HTML_PIECES = st.sampled_from(
    [
        "<p>", "</p>", "<a href='https://e.com'>", "</a>", "<b>", "</b>", "<table>", "<tr>",
        "<td>", "</table>", "<script>", "</script>", "<img src=x onerror=1>", "<ul><li>", "<li>",
        "<pre>", "</pre>", "<!--", "-->", "<svg>", "<style>", "</style>", "<noscript>", "&amp;",
        "&lt;", "<", ">", "\"", "'", "<a href=javascript:1>", "<h1>", "<blockquote>", "<select>",
        "<textarea>", "<math>", "<mi>", "<form>", "[[[", "]]]", "\n", " ", "text",
    ]
)  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(HTML_PIECES | st.text(max_size=5)).map("".join)))
def test_sanitising_is_idempotent(html: str) -> None:
    once = rendering.sanitize_html(html)
    assert rendering.sanitize_html(once) == once


@settings(max_examples=200, deadline=None)
@given(
    st.lists(HTML_PIECES | st.sampled_from(["*", "_", "`", "#", "- ", "> ", "[a](b)"])).map("".join)
)
def test_rendered_markdown_is_already_sanitised(markdown: str) -> None:
    html = rendering.markdown_to_html(markdown)
    assert rendering.sanitize_html(html) == html
    assert NAME not in html and UNSUBSCRIBE_URL not in html and PREFERENCES_URL not in html


def test_rules_and_inline_tags_render_in_every_flavour() -> None:
    html = rendering.markdown_to_html("a<sub>2</sub> <abbr title='x'>HTML</abbr>\n\n---\n\nb")

    assert rendering.html_to_text(html) == "a2 HTML\n\n" + "-" * 20 + "\n\nb"
    assert "———" in rendering.html_to_slack(html)
    assert "\u2015" in rendering.html_to_discord(html)


def test_a_stray_list_item_and_a_long_paragraph_still_render() -> None:
    assert rendering.html_to_text("<li>lonely</li>") == "lonely"
    chunks = rendering._split_sections("x" * 7000 + "\n\nshort", 3000)
    assert [len(chunk) for chunk in chunks] == [3000, 3000, 1000 + len("\n\nshort")]


@pytest.mark.django_db
def test_unsaved_publications_render_without_being_cached() -> None:
    unsaved = Publication(title="Unsaved", slug="unsaved", body="Hi", language="en")

    assert rendering.render_slack(unsaved)["text"] == "Unsaved"
    assert rendering._cache == {}


def test_anything_with_the_fields_renders_without_being_cached() -> None:
    class Draft:
        title = "Loose"
        slug = "loose"
        summary = ""
        body = "Body"
        language = "en"
        id = None
        history_id = None

        class topics:
            @staticmethod
            def values(field: str) -> list[int]:
                return []

    payload = rendering.render_webhook(Draft())

    assert payload["data"]["title"] == "Loose"
    assert rendering._cache == {}


@pytest.mark.django_db
def test_the_cache_keeps_the_most_recent_renderings_only(
    draft: Publication, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rendering, "CACHE_SIZE", 2)

    rendering.render_slack(draft)
    rendering.render_discord(draft)
    rendering.render_webhook(draft)

    assert [key[0] for key in rendering._cache] == ["discord", "webhook"]
