"""Rendering a publication version for every channel, from one Markdown source.

Contract used by the delivery engine (channels/):

- ``render_email(version) -> EmailTemplate``: subject, HTML (sanitised, CSS inlined) and plain text,
  holding placeholders for the personal parts; ``EmailTemplate.personalize(...)`` fills them per
  recipient without re-rendering the body.
- ``render_slack(version)``, ``render_discord(version)``, ``render_webhook(version)``: the JSON
  payload each broadcast channel posts.
- ``render_for_kind(version, kind)`` picks by channel kind (``email_*``, ``slack``, ``discord``,
  ``webhook``) and raises ``UnknownChannelKindError`` (a KeyError) for any other kind.

``version`` is a ``HistoricalPublication`` row (what a Dispatch records) or a live Publication.
Rendering is deterministic and cached per (version, channel type): a history row never changes,
a live publication is keyed by its ``updated_at`` (every service write saves it).

The pipeline: Markdown (markdown-it-py, CommonMark) -> HTML -> nh3 allowlist -> placeholder
neutralisation. Every other channel is derived from that sanitised HTML, never from the raw
Markdown, so what one channel drops no channel shows.
"""

from __future__ import annotations

import copy
import html as html_lib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import css_inline
import nh3
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from markdown_it import MarkdownIt

from publishing.exceptions import UnknownChannelKindError

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
REMOVED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"}
)
LINK_REL = "noopener noreferrer"

#: Placeholders for the per-recipient parts, filled by EmailTemplate.personalize.
NAME = "[[[name]]]"
PREFERENCES_URL = "[[[preferences_url]]]"
UNSUBSCRIBE_URL = "[[[unsubscribe_url]]]"
PLACEHOLDERS = (NAME, PREFERENCES_URL, UNSUBSCRIBE_URL)

EMAIL_KINDS_PREFIX = "email"
SLACK_SECTION_LIMIT = 3000
SLACK_BODY_LIMIT = 12_000
SLACK_HEADER_LIMIT = 150
DISCORD_TITLE_LIMIT = 256
DISCORD_DESCRIPTION_LIMIT = 4096
DISCORD_FOOTER_LIMIT = 1000
DISCORD_COLOR = 0x2E7D32
CACHE_SIZE = 128

_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
# A "[" followed by "[[": breaking every such run leaves at most two brackets in a row, so no
# author text can ever contain a placeholder, whatever the run length.
_PLACEHOLDER_START = re.compile(r"\[(?=\[\[)")
_WHITESPACE = re.compile(r"\s+")


class Renderable(Protocol):
    title: str
    slug: str
    summary: str
    body: str
    language: str


# --- Sanitising -------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _cleaner(site_url: str) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(REMOVED_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
        # Relative links mean nothing in a mailbox or a chat: anchor them on the public site.
        url_relative=("rewrite_with_base", site_url + "/"),
    )


def sanitize_html(html: str) -> str:
    """Keep only the allowlisted tags, attributes and URL schemes; links get rel="noopener".

    Idempotent: sanitising sanitised output returns it unchanged. The HTML parser may rebuild
    a malformed tree differently on a second pass, so this cleans until the output is a fixed
    point (in practice one or two passes).
    """
    cleaner = _cleaner(settings.SITE_URL)
    current = cleaner.clean(html)
    for _ in range(4):
        cleaned = cleaner.clean(current)
        if cleaned == current:
            return current
        current = cleaned
    # Never seen: give up on markup (escaped text is stable) rather than return something unstable.
    return str(nh3.clean(current, tags=set()))


def neutralise_placeholders(text: str) -> str:
    """Break any placeholder-like run of brackets in author content with a zero-width space."""
    return _PLACEHOLDER_START.sub("[\u200b", text)


def markdown_to_html(body: str) -> str:
    """Markdown to sanitised HTML that cannot contain a placeholder."""
    return neutralise_placeholders(sanitize_html(_markdown.render(body)))


# --- HTML to chat mark-up and plain text ---------------------------------------------------------


@dataclass
class _Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[_Node | str] = field(default_factory=list)


_VOID = frozenset({"br", "hr", "img"})
_BLOCKS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "hr", "table"}
)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Node("root")
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = _Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def _parse(html: str) -> _Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def _safe_url(url: str) -> str | None:
    url = url.strip()
    scheme = urlsplit(url).scheme.lower()
    return url if scheme in ALLOWED_URL_SCHEMES else None


class _Flavor:
    """Plain text; subclasses add Slack mrkdwn and Discord Markdown."""

    bullet = "- "

    def escape(self, text: str) -> str:
        return text

    def strong(self, text: str) -> str:
        return text

    def emphasis(self, text: str) -> str:
        return text

    def strike(self, text: str) -> str:
        # Struck-out words change the meaning when they silently reappear.
        return f"~~{text}~~" if text.strip() else text

    def code(self, text: str) -> str:
        return f"`{text}`"

    def link(self, url: str, text: str) -> str:
        return url if text in ("", url) else f"{text} ({url})"

    def image(self, url: str, alt: str) -> str:
        return f"[{alt or 'image'}: {url}]"

    def heading(self, level: int, text: str) -> str:
        return f"{text}\n{('=' if level == 1 else '-') * min(len(text), 72)}"

    def pre(self, text: str) -> str:
        return "\n".join("    " + line for line in text.rstrip("\n").split("\n"))

    def rule(self) -> str:
        return "-" * 20


class _Slack(_Flavor):
    bullet = "• "

    def escape(self, text: str) -> str:
        # Slack reads <...> as links and mentions (<!channel>): author text must never do that.
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def strong(self, text: str) -> str:
        return f"*{text}*" if text.strip() else text

    def emphasis(self, text: str) -> str:
        return f"_{text}_" if text.strip() else text

    def strike(self, text: str) -> str:
        return f"~{text}~" if text.strip() else text

    def link(self, url: str, text: str) -> str:
        url = self.escape(url).replace("|", "%7C")
        return f"<{url}>" if text in ("", url) else f"<{url}|{text}>"

    def image(self, url: str, alt: str) -> str:
        return self.link(url, self.escape(alt) or "image")

    def code(self, text: str) -> str:
        return f"`{self.escape(text)}`"

    def heading(self, level: int, text: str) -> str:
        return f"*{text}*"

    def pre(self, text: str) -> str:
        code = self.escape(text.rstrip("\n"))
        return f"```\n{code}\n```"

    def rule(self) -> str:
        return "———"


# Inline mark-up only: <...> would make a mention, timestamp or link; the rest formats text.
_DISCORD_SPECIAL = re.compile(r"([\\*_~`|\[\]()<])")


class _Discord(_Flavor):
    def escape(self, text: str) -> str:
        return _DISCORD_SPECIAL.sub(r"\\\1", text)

    def strong(self, text: str) -> str:
        return f"**{text}**" if text.strip() else text

    def emphasis(self, text: str) -> str:
        return f"*{text}*" if text.strip() else text

    def strike(self, text: str) -> str:
        return f"~~{text}~~" if text.strip() else text

    def link(self, url: str, text: str) -> str:
        url = quote(url, safe=":/?#@!$&'*+,;=%~.-_")
        return f"<{url}>" if text in ("", url) else f"[{text}]({url})"

    def image(self, url: str, alt: str) -> str:
        return self.link(url, self.escape(alt) or "image")

    def heading(self, level: int, text: str) -> str:
        return f"{'#' * level} {text}" if level <= 3 else f"**{text}**"

    def pre(self, text: str) -> str:
        # A fence inside the code would end the block early.
        code = text.rstrip("\n").replace("```", "`\u200b``")
        return f"```\n{code}\n```"

    def rule(self) -> str:
        return "\u2015" * 10


class _Converter:
    def __init__(self, flavor: _Flavor) -> None:
        self.flavor = flavor

    def inline(self, node: _Node | str) -> str:
        flavor = self.flavor
        if isinstance(node, str):
            return flavor.escape(_WHITESPACE.sub(" ", node))
        inner = "".join(self.inline(child) for child in node.children)
        if node.tag in ("strong", "b"):
            return flavor.strong(inner)
        if node.tag in ("em", "i"):
            return flavor.emphasis(inner)
        if node.tag in ("del", "s"):
            return flavor.strike(inner)
        if node.tag == "code":
            return flavor.code(_text_of(node).replace("`", "'"))
        if node.tag == "br":
            return "\n"
        if node.tag == "a":
            url = _safe_url(node.attrs.get("href", ""))
            return flavor.link(url, inner.strip()) if url else inner
        if node.tag == "img":
            url = _safe_url(node.attrs.get("src", ""))
            return flavor.image(url, node.attrs.get("alt", "")) if url else ""
        if node.tag in _BLOCKS:
            return self.block(node)
        return inner

    def blocks(self, node: _Node, depth: int = 0) -> str:
        parts: list[str] = []
        run: list[str] = []

        def flush() -> None:
            text = "".join(run).strip()
            if text:
                parts.append(text)
            run.clear()

        for child in node.children:
            if isinstance(child, _Node) and child.tag in _BLOCKS:
                flush()
                rendered = self.block(child, depth)
                if rendered.strip():
                    parts.append(rendered)
            else:
                run.append(self.inline(child))
        flush()
        return "\n\n".join(parts)

    def block(self, node: _Node, depth: int = 0) -> str:
        flavor = self.flavor
        tag = node.tag
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            return flavor.heading(int(tag[1]), self.inline_of(node))
        if tag in ("ul", "ol"):
            lines = []
            items = [c for c in node.children if isinstance(c, _Node) and c.tag == "li"]
            for number, item in enumerate(items, start=1):
                marker = f"{number}. " if tag == "ol" else flavor.bullet
                content = self.blocks(item, depth + 1).replace("\n\n", "\n")
                indent = "  " * depth
                body = content.replace("\n", "\n" + indent + " " * len(marker))
                lines.append(f"{indent}{marker}{body}")
            return "\n".join(lines)
        if tag == "li":
            return self.blocks(node, depth)
        if tag == "blockquote":
            return "\n".join("> " + line for line in self.blocks(node, depth).split("\n"))
        if tag == "pre":
            return flavor.pre(_text_of(node))
        if tag == "hr":
            return flavor.rule()
        if tag == "table":
            rows = []
            for row in _descendants(node, "tr"):
                cells = [
                    self.inline_of(cell)
                    for cell in row.children
                    if isinstance(cell, _Node) and cell.tag in ("td", "th")
                ]
                rows.append(" | ".join(cells))
            return "\n".join(rows)
        return self.inline_of(node)

    def inline_of(self, node: _Node) -> str:
        return "".join(self.inline(child) for child in node.children).strip()


def _text_of(node: _Node | str) -> str:
    if isinstance(node, str):
        return node
    return "".join(_text_of(child) for child in node.children)


def _descendants(node: _Node, tag: str) -> list[_Node]:
    found: list[_Node] = []
    for child in node.children:
        if isinstance(child, _Node):
            if child.tag == tag:
                found.append(child)
            found.extend(_descendants(child, tag))
    return found


def html_to_text(html: str) -> str:
    """Sanitised HTML to readable plain text (the email's text alternative)."""
    return _Converter(_Flavor()).blocks(_parse(html))


def html_to_slack(html: str) -> str:
    """Sanitised HTML to Slack mrkdwn, with every <, > and & of author text escaped."""
    return _Converter(_Slack()).blocks(_parse(html))


def html_to_discord(html: str) -> str:
    """Sanitised HTML to Discord Markdown, with author text's Markdown characters escaped."""
    return _Converter(_Discord()).blocks(_parse(html))


# --- What a version holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    publication_id: int | None
    version_id: int | None
    title: str
    slug: str
    summary: str
    body: str
    language: str
    published_at: datetime | None
    topics: tuple[tuple[str, str], ...]  # (slug, name), sorted by slug

    @property
    def url(self) -> str:
        return f"{settings.SITE_URL}/p/{quote(self.slug)}/"


def _source(version: Renderable, *, with_topics: bool = True) -> _Source:
    from publishing.models import Publication, Topic

    version_id: int | None
    if isinstance(version, Publication):
        publication_id: int | None = version.pk
        version_id = None
        topics = version.topics.all() if version.pk else Topic.objects.none()
    elif hasattr(version, "history_id"):
        publication_id = getattr(version, "id", None)
        version_id = version.history_id
        topic_ids = version.topics.values("topic_id")  # type: ignore[attr-defined]
        topics = Topic.objects.filter(pk__in=topic_ids)
    else:
        # A plain object with the Renderable fields (a channel's test message): no topics.
        publication_id = version_id = None
        topics = Topic.objects.none()
    return _Source(
        publication_id=publication_id,
        version_id=version_id,
        title=version.title,
        slug=version.slug,
        summary=version.summary,
        body=version.body,
        language=version.language,
        published_at=getattr(version, "published_at", None),
        topics=tuple(topics.order_by("slug").values_list("slug", "name")) if with_topics else (),
    )


# --- The cache -----------------------------------------------------------------------------------

_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_key(version: Renderable, family: str) -> tuple[Any, ...] | None:
    from publishing.models import Publication

    site = (settings.SITE_URL, settings.SITE_NAME)
    if isinstance(version, Publication):
        if version.pk is None or version.updated_at is None:
            return None
        return (family, "live", version.pk, version.updated_at.isoformat(), *site)
    history_id = getattr(version, "history_id", None)
    if history_id is None:
        return None
    # With its date: SQLite reuses a deleted row's id, and a cache must never mix two versions.
    return (family, "version", history_id, getattr(version, "history_date", None), *site)


def _cached(
    version: Renderable, family: str, build: Callable[[_Source], Any], *, with_topics: bool = True
) -> Any:
    key = _cache_key(version, family)
    if key is not None:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
    value = build(_source(version, with_topics=with_topics))
    if key is not None:
        with _cache_lock:
            _cache[key] = value
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
    return value


def clear_cache() -> None:
    """Forget every cached rendering (tests, and after a template change in a running process)."""
    with _cache_lock:
        _cache.clear()


def _body_html(source: _Source) -> str:
    return markdown_to_html(source.body)


def render_body_html(version: Renderable) -> str:
    """The sanitised body HTML, as the public archive page shows it."""
    # The body needs no topics: no query at all, even on a miss (feeds render many bodies).
    return str(_cached(version, "web", _body_html, with_topics=False))


# --- Email ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailTemplate:
    subject: str
    html: str
    text: str

    def personalize(
        self, *, name: str, preferences_url: str, unsubscribe_url: str
    ) -> tuple[str, str]:
        """Return (html, text) with the recipient's parts filled in (HTML-escaped in the HTML).

        An empty name reads "there" ("Hello there,"). Author content holds no placeholder
        (see ``neutralise_placeholders``), so only the template's own ones are replaced.
        """
        name = name.strip() or "there"
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


_inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)


def _build_email(source: _Source) -> EmailTemplate:
    body_html = _body_html(source)
    title = neutralise_placeholders(source.title)
    summary = neutralise_placeholders(source.summary)
    context = {
        "title": title,
        "summary": summary,
        "body_html": body_html,
        "body_text": html_to_text(body_html),
        "url": source.url,
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
        "language": source.language,
        "name": NAME,
        "preferences_url": PREFERENCES_URL,
        "unsubscribe_url": UNSUBSCRIBE_URL,
        "title_rule": "=" * min(len(title), 72),
    }
    with translation.override(source.language):
        html = render_to_string("emails/publication.html", context)
        text = render_to_string("emails/publication.txt", context)
    # Subjects are one line: a newline would end the header.
    subject = _WHITESPACE.sub(" ", title).strip()
    return EmailTemplate(subject=subject, html=_inliner.inline(html), text=text.strip() + "\n")


def render_email(version: Renderable) -> EmailTemplate:
    """The email of this version: subject, inlined HTML and text, with personal placeholders."""
    result: EmailTemplate = _cached(version, "email", _build_email)
    return result


# --- Broadcast channels --------------------------------------------------------------------------


def _truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    if len(text) <= limit:
        return text
    return text[: limit - len(ellipsis)].rstrip() + ellipsis


def _split_sections(text: str, limit: int) -> list[str]:
    """Split at paragraph boundaries into chunks of at most ``limit`` characters."""
    chunks: list[str] = []
    current = ""
    for paragraph in text.split("\n\n"):
        while len(paragraph) > limit:
            chunks.extend([current] if current else [])
            current = ""
            chunks.append(paragraph[:limit])
            paragraph = paragraph[limit:]
        candidate = f"{current}\n\n{paragraph}" if current else paragraph
        if len(candidate) > limit:
            chunks.append(current)
            current = paragraph
        else:
            current = candidate
    if current:
        chunks.append(current)
    return [chunk for chunk in chunks if chunk.strip()]


def _build_slack(source: _Source) -> dict[str, Any]:
    slack = _Slack()
    title = _WHITESPACE.sub(" ", source.title).strip()
    body = html_to_slack(_body_html(source))
    if len(body) > SLACK_BODY_LIMIT:
        body = _truncate(body, SLACK_BODY_LIMIT) + f"\n\n<{source.url}|Read the rest online>"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(title, SLACK_HEADER_LIMIT)},
        }
    ]
    if source.summary.strip():
        summary = slack.emphasis(slack.escape(_WHITESPACE.sub(" ", source.summary).strip()))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": summary}})
    blocks.append({"type": "divider"})
    for chunk in _split_sections(body, SLACK_SECTION_LIMIT):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    if source.topics:
        names = ", ".join(slack.escape(name) for _, name in source.topics)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": names}]})
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Read online"},
                    "url": source.url,
                    "action_id": "read_online",
                }
            ],
        }
    )
    # "text" is the notification and accessibility fallback; Slack escapes apply there too.
    return {"text": slack.escape(title), "blocks": blocks, "unfurl_links": False}


def render_slack(version: Renderable) -> dict[str, Any]:
    """The Slack Block Kit message (chat.postMessage or incoming-webhook body)."""
    payload: dict[str, Any] = copy.deepcopy(_cached(version, "slack", _build_slack))
    return payload


def _build_discord(source: _Source) -> dict[str, Any]:
    discord = _Discord()
    title = _WHITESPACE.sub(" ", source.title).strip()
    description = html_to_discord(_body_html(source))
    if source.summary.strip():
        summary = discord.escape(_WHITESPACE.sub(" ", source.summary).strip())
        description = f"*{summary}*\n\n{description}"
    embed: dict[str, Any] = {
        "title": _truncate(title, DISCORD_TITLE_LIMIT),
        "url": source.url,
        "description": _truncate(description, DISCORD_DESCRIPTION_LIMIT),
        "color": DISCORD_COLOR,
    }
    if source.topics:
        names = ", ".join(name for _, name in source.topics)
        embed["footer"] = {"text": _truncate(names, DISCORD_FOOTER_LIMIT)}
    if source.published_at is not None:
        embed["timestamp"] = source.published_at.isoformat()
    # No @everyone, @here, role or user ping, whatever the text says.
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}


def render_discord(version: Renderable) -> dict[str, Any]:
    """The Discord webhook body: one embed, mentions disabled."""
    payload: dict[str, Any] = copy.deepcopy(_cached(version, "discord", _build_discord))
    return payload


def _build_webhook(source: _Source) -> dict[str, Any]:
    body_html = _body_html(source)
    return {
        "type": "publication.published",
        "data": {
            "id": source.publication_id,
            "version": source.version_id,
            "slug": source.slug,
            "url": source.url,
            "title": source.title,
            "summary": source.summary,
            "language": source.language,
            "topics": [slug for slug, _ in source.topics],
            "published_at": source.published_at.isoformat() if source.published_at else None,
            "html": body_html,
            "text": html_to_text(body_html),
        },
    }


def render_webhook(version: Renderable) -> dict[str, Any]:
    """The webhook JSON body: the publication's data with sanitised HTML and text, no Markdown."""
    payload: dict[str, Any] = copy.deepcopy(_cached(version, "webhook", _build_webhook))
    return payload


_BROADCAST_RENDERERS: dict[str, Callable[[Renderable], dict[str, Any]]] = {
    "slack": render_slack,
    "discord": render_discord,
    "webhook": render_webhook,
}


def render_for_kind(version: Renderable, kind: str) -> EmailTemplate | dict[str, Any]:
    """The rendering for a channel kind; raises UnknownChannelKindError for an unknown kind."""
    if kind.startswith(EMAIL_KINDS_PREFIX):
        return render_email(version)
    try:
        renderer = _BROADCAST_RENDERERS[kind]
    except KeyError:
        raise UnknownChannelKindError(
            f"No rendering for channel kind {kind!r}.", field="kind"
        ) from None
    return renderer(version)
