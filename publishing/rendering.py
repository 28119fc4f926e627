"""Rendering a publication version for every channel, from one Markdown source.

Contract used by the delivery engine (channels/):

- ``render_email(version) -> EmailTemplate``: subject, HTML (sanitised, CSS inlined) and plain text,
  holding placeholders for the personal parts; ``EmailTemplate.personalize(...)`` fills them per
  recipient without re-rendering the body.
- ``render_slack(version)``, ``render_discord(version)``, ``render_webhook(version)``: the JSON
  payload each broadcast channel posts.
- ``render_for_kind(version, kind)`` picks by channel kind.

``version`` is a ``HistoricalPublication`` row (what a Dispatch records) or a live Publication.
Rendering is deterministic and cached per (version, channel type).
"""

from __future__ import annotations

import html as html_lib
from dataclasses import dataclass
from typing import Any, Protocol

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5",
        "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
        "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "th": {"align"},
    "td": {"align"},
    "abbr": {"title"},
}
ALLOWED_URL_SCHEMES = frozenset({"http", "https", "mailto"})
# Content removed together with its text, not just unwrapped.
REMOVED_WITH_CONTENT = frozenset({"script", "style", "iframe", "object", "embed", "noscript"})

#: Placeholders for the per-recipient parts, filled by EmailTemplate.personalize.
NAME = "[[[name]]]"
PREFERENCES_URL = "[[[preferences_url]]]"
UNSUBSCRIBE_URL = "[[[unsubscribe_url]]]"
PLACEHOLDERS = (NAME, PREFERENCES_URL, UNSUBSCRIBE_URL)

_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


class Renderable(Protocol):
    title: str
    slug: str
    summary: str
    body: str
    language: str


def sanitize_html(html: str) -> str:
    """Keep only the allowlisted tags, attributes and URL schemes; links get rel="noopener".

    Idempotent: sanitising sanitised output returns it unchanged.
    """
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def _neutralise_placeholders(text: str) -> str:
    # Author content must never smuggle in a personal-part placeholder.
    return text.replace("[[[", "[\u200b[[")


def markdown_to_html(body: str) -> str:
    """Markdown to sanitised HTML."""
    return sanitize_html(_markdown.render(_neutralise_placeholders(body)))


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    html: str
    text: str

    def personalize(
        self, *, name: str, preferences_url: str, unsubscribe_url: str
    ) -> tuple[str, str]:
        """Return (html, text) with the recipient's parts filled in (HTML-escaped in the HTML)."""
        html = (
            self.html.replace(NAME, html_lib.escape(name))
            .replace(PREFERENCES_URL, html_lib.escape(preferences_url))
            .replace(UNSUBSCRIBE_URL, html_lib.escape(unsubscribe_url))
        )
        text = (
            self.text.replace(NAME, name)
            .replace(PREFERENCES_URL, preferences_url)
            .replace(UNSUBSCRIBE_URL, unsubscribe_url)
        )
        return html, text


def render_email(version: Renderable) -> EmailTemplate:
    body_html = markdown_to_html(version.body)
    title = html_lib.escape(version.title)
    html = (
        f"<!doctype html><html><body><h1>{title}</h1>{body_html}"
        f'<hr><p>Hello {NAME}. <a href="{PREFERENCES_URL}">Preferences</a> · '
        f'<a href="{UNSUBSCRIBE_URL}">Unsubscribe</a></p></body></html>'
    )
    text = (
        f"{version.title}\n\n{version.body}\n\n--\nHello {NAME}.\n"
        f"Preferences: {PREFERENCES_URL}\nUnsubscribe: {UNSUBSCRIBE_URL}\n"
    )
    return EmailTemplate(subject=version.title, html=html, text=text)


def render_slack(version: Renderable) -> dict[str, Any]:
    return {
        "text": version.title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": version.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": version.summary or " "}},
        ],
    }


def render_discord(version: Renderable) -> dict[str, Any]:
    return {"embeds": [{"title": version.title[:256], "description": version.summary[:4096]}]}


def render_webhook(version: Renderable) -> dict[str, Any]:
    return {
        "type": "publication.published",
        "data": {"slug": version.slug, "title": version.title, "summary": version.summary},
    }


def render_for_kind(version: Renderable, kind: str) -> EmailTemplate | dict[str, Any]:
    if kind.startswith("email"):
        return render_email(version)
    renderers = {"slack": render_slack, "discord": render_discord, "webhook": render_webhook}
    return renderers[kind](version)
