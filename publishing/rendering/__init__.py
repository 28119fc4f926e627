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
neutralisation (``markup``). Every other channel is derived from that sanitised HTML, never from
the raw Markdown, so what one channel drops no channel shows: ``converters`` (HTML to plain text,
Slack mrkdwn, Discord Markdown), ``emails`` and ``broadcast`` (the payloads), read from a
``source`` snapshot of the version. This module keeps the cache and the entry points.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from django.conf import settings

from publishing.exceptions import UnknownChannelKindError
from publishing.rendering.broadcast import (
    DISCORD_COLOR,
    DISCORD_DESCRIPTION_LIMIT,
    DISCORD_FOOTER_LIMIT,
    DISCORD_TITLE_LIMIT,
    SLACK_BODY_LIMIT,
    SLACK_HEADER_LIMIT,
    SLACK_SECTION_LIMIT,
    build_discord,
    build_slack,
    build_webhook,
)
from publishing.rendering.broadcast import _split_sections as _split_sections  # for the tests
from publishing.rendering.converters import html_to_discord, html_to_slack, html_to_text
from publishing.rendering.emails import (
    LESS_URL,
    MORE_URL,
    NAME,
    PLACEHOLDERS,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    EmailTemplate,
    build_email,
)
from publishing.rendering.markup import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    ALLOWED_URL_SCHEMES,
    LINK_REL,
    REMOVED_WITH_CONTENT,
    markdown_to_html,
    neutralise_placeholders,
    sanitize_html,
)
from publishing.rendering.source import (
    Renderable,
    Source,
    TranslatedVersion,
    body_html,
    read_source,
)

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "CACHE_SIZE",
    "DISCORD_COLOR",
    "DISCORD_DESCRIPTION_LIMIT",
    "DISCORD_FOOTER_LIMIT",
    "DISCORD_TITLE_LIMIT",
    "EMAIL_KINDS_PREFIX",
    "LESS_URL",
    "LINK_REL",
    "MORE_URL",
    "NAME",
    "PLACEHOLDERS",
    "PREFERENCES_URL",
    "REMOVED_WITH_CONTENT",
    "SLACK_BODY_LIMIT",
    "SLACK_HEADER_LIMIT",
    "SLACK_SECTION_LIMIT",
    "UNSUBSCRIBE_URL",
    "EmailTemplate",
    "Renderable",
    "TranslatedVersion",
    "clear_cache",
    "html_to_discord",
    "html_to_slack",
    "html_to_text",
    "markdown_to_html",
    "neutralise_placeholders",
    "render_body_html",
    "render_discord",
    "render_email",
    "render_for_kind",
    "render_slack",
    "render_webhook",
    "sanitize_html",
]

EMAIL_KINDS_PREFIX = "email"
#: Renderings kept per process; read at each store, so a test may lower it.
CACHE_SIZE = 128

# --- The cache -----------------------------------------------------------------------------------

_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()


def _cache_key(version: Renderable, family: str) -> tuple[Any, ...] | None:
    from publishing.models import Publication

    site = (settings.SITE_URL, settings.SITE_NAME)
    if isinstance(version, TranslatedVersion):
        # The original's key and the translation's own: an edit of either is another entry.
        original = _cache_key(version.original, family)
        translation = version.translation
        own = getattr(translation, "history_id", None)
        if own is not None:
            part: tuple[Any, ...] = ("version", own, getattr(translation, "history_date", None))
        elif translation.pk is not None and translation.updated_at is not None:
            part = ("live", translation.pk, translation.updated_at.isoformat())
        else:
            return None
        return None if original is None else (*original, "translation", *part)
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
    version: Renderable,
    family: str,
    build: Callable[[Source], Any],
    *,
    with_topics: bool = True,
    with_number: bool = False,
) -> Any:
    key = _cache_key(version, family)
    if key is not None:
        with _cache_lock:
            if key in _cache:
                _cache.move_to_end(key)
                return _cache[key]
    value = build(read_source(version, with_topics=with_topics, with_number=with_number))
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


# --- The renderings ------------------------------------------------------------------------------


def render_body_html(version: Renderable) -> str:
    """The sanitised body HTML, as the public archive page shows it."""
    # The body needs no topics: no query at all, even on a miss (feeds render many bodies).
    return str(_cached(version, "web", body_html, with_topics=False))


def render_email(version: Renderable) -> EmailTemplate:
    """The email of this version: subject, inlined HTML and text, with personal placeholders."""
    result: EmailTemplate = _cached(version, "email", build_email)
    return result


def render_slack(version: Renderable) -> dict[str, Any]:
    """The Slack Block Kit message (chat.postMessage or incoming-webhook body)."""
    payload: dict[str, Any] = copy.deepcopy(_cached(version, "slack", build_slack))
    return payload


def render_discord(version: Renderable) -> dict[str, Any]:
    """The Discord webhook body: one embed, mentions disabled."""
    payload: dict[str, Any] = copy.deepcopy(_cached(version, "discord", build_discord))
    return payload


def render_webhook(version: Renderable) -> dict[str, Any]:
    """The webhook JSON body: the publication's data with sanitised HTML and text, no Markdown."""
    # Only the webhook body carries the version's number (one count query, once per version).
    payload: dict[str, Any] = copy.deepcopy(
        _cached(version, "webhook", build_webhook, with_number=True)
    )
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
