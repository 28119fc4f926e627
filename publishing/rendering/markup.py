"""Markdown to sanitised HTML: the first stage of every channel's rendering.

Markdown (markdown-it-py, CommonMark) -> HTML -> nh3 allowlist -> placeholder neutralisation.
Every channel is derived from this sanitised HTML, never from the raw Markdown, so what one
channel drops no channel shows.
"""

from __future__ import annotations

import re
from functools import lru_cache

import nh3
from django.conf import settings
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
REMOVED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math"}
)
LINK_REL = "noopener noreferrer"

_markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
# A "[" followed by "[[": breaking every such run leaves at most two brackets in a row, so no
# author text can ever contain a placeholder, whatever the run length.
_PLACEHOLDER_START = re.compile(r"\[(?=\[\[)")
#: Runs of whitespace, collapsed to one space in one-line texts (titles, chat mark-up).
WHITESPACE = re.compile(r"\s+")


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
