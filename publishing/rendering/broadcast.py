"""The JSON payloads of the broadcast channels: a Slack Block Kit message, a Discord embed and
a webhook body, each within its service's limits."""

from __future__ import annotations

from typing import Any

from publishing.rendering.converters import (
    DiscordFlavor,
    SlackFlavor,
    html_to_discord,
    html_to_slack,
    html_to_text,
)
from publishing.rendering.markup import WHITESPACE
from publishing.rendering.source import Source, body_html

SLACK_SECTION_LIMIT = 3000
SLACK_BODY_LIMIT = 12_000
SLACK_HEADER_LIMIT = 150
DISCORD_TITLE_LIMIT = 256
DISCORD_DESCRIPTION_LIMIT = 4096
DISCORD_FOOTER_LIMIT = 1000
DISCORD_COLOR = 0x2E7D32


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


def build_slack(source: Source) -> dict[str, Any]:
    """The Slack Block Kit message: header, summary, body sections, topics, a "Read online"
    button; author text escaped so it can never mention or link."""
    slack = SlackFlavor()
    title = WHITESPACE.sub(" ", source.title).strip()
    body = html_to_slack(body_html(source))
    if len(body) > SLACK_BODY_LIMIT:
        body = _truncate(body, SLACK_BODY_LIMIT) + f"\n\n<{source.url}|Read the rest online>"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _truncate(title, SLACK_HEADER_LIMIT)},
        }
    ]
    if source.summary.strip():
        summary = slack.emphasis(slack.escape(WHITESPACE.sub(" ", source.summary).strip()))
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


def build_discord(source: Source) -> dict[str, Any]:
    """The Discord webhook body: one embed within Discord's limits, mentions disabled."""
    discord = DiscordFlavor()
    title = WHITESPACE.sub(" ", source.title).strip()
    description = html_to_discord(body_html(source))
    if source.summary.strip():
        summary = discord.escape(WHITESPACE.sub(" ", source.summary).strip())
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


def build_webhook(source: Source) -> dict[str, Any]:
    """The webhook body: the publication's data with sanitised HTML and text, no Markdown."""
    html = body_html(source)
    return {
        "type": "publication.published",
        "data": {
            "id": source.publication_id,
            "version": source.version_number,
            "slug": source.slug,
            "url": source.url,
            "title": source.title,
            "summary": source.summary,
            "language": source.language,
            "topics": [slug for slug, _ in source.topics],
            "published_at": source.published_at.isoformat() if source.published_at else None,
            "html": html,
            "text": html_to_text(html),
        },
    }
