"""What each channel will show, for the admin's preview page: the email as sent, Slack and
Discord as message mock-ups, the webhook body as coloured JSON.

Every mock-up is drawn from the payload the channel's backend posts (the same builders as
``publishing.rendering``), not from the Markdown: what a chat would drop or escape, the mock-up
drops or escapes too. Author text is escaped before any formatting is applied, and each piece
of text then goes through nh3 with a short allowlist, so a publication can never run script in
the admin's page.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import nh3
from django.conf import settings
from django.utils import timezone

from publishing.rendering.broadcast import build_discord, build_slack, build_webhook
from publishing.rendering.emails import build_email
from publishing.rendering.markup import ALLOWED_URL_SCHEMES, LINK_REL
from publishing.rendering.source import Source

#: Tags a mock-up's text may hold after formatting; everything else is escaped or dropped.
_MOCKUP_TAGS = {
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "p", "pre", "strong", "u",
}  # fmt: skip


def _clean(fragment: str) -> str:
    return str(
        nh3.clean(
            fragment,
            tags=_MOCKUP_TAGS,
            attributes={"a": {"href"}},
            url_schemes=set(ALLOWED_URL_SCHEMES),
            link_rel=LINK_REL,
        )
    )


def _link(url: str, label_html: str) -> str:
    return f'<a href="{html.escape(url, quote=True)}">{label_html}</a>'


# --- Slack mrkdwn --------------------------------------------------------------------------------

_SLACK_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_SLACK_STYLES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"`([^`\n]+)`"), r"<code>\1</code>"),
    (re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])"), r"<em>\1</em>"),
    (re.compile(r"(?<![\w~])~(?=\S)([^~\n]*?\S)~(?![\w~])"), r"<del>\1</del>"),
]


def _slack_text(text: str) -> str:
    """Slack-escaped text (&amp; &lt; &gt;) with its styles, as HTML."""
    result = html.escape(html.unescape(text), quote=False)
    for pattern, replacement in _SLACK_STYLES:
        result = pattern.sub(replacement, result)
    return result


def _slack_inline(text: str) -> str:
    parts: list[str] = []
    position = 0
    for match in _SLACK_LINK.finditer(text):
        parts.append(_slack_text(text[position : match.start()]))
        url = html.unescape(match.group(1))
        label = match.group(2)
        parts.append(_link(url, _slack_text(label) if label else html.escape(url)))
        position = match.end()
    parts.append(_slack_text(text[position:]))
    return "".join(parts)


def _blocks_of_lines(text: str, inline: Callable[[str], str], quote_prefix: str = "> ") -> str:
    """Paragraphs, fenced code and quotes of chat mark-up, each line through ``inline``."""
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()

    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            flush()
            end = index + 1
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            code = "\n".join(lines[index + 1 : end])
            out.append(f"<pre>{html.escape(html.unescape(code), quote=False)}</pre>")
            index = end + 1
            continue
        if not line.strip():
            flush()
        elif line.startswith(quote_prefix):
            flush()
            out.append(f"<blockquote>{inline(line[len(quote_prefix) :])}</blockquote>")
        else:
            paragraph.append(inline(line))
        index += 1
    flush()
    return "".join(out)


def slack_mrkdwn_to_html(text: str) -> str:
    """A Slack mrkdwn text as Slack shows it, as safe HTML."""
    return _clean(_blocks_of_lines(text, _slack_inline))


def slack_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's blocks, each with the HTML the mock-up shows for it."""
    shown: list[dict[str, Any]] = []
    for block in payload.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            shown.append({"type": kind, "text": block["text"]["text"]})
        elif kind == "section":
            shown.append({"type": kind, "html": slack_mrkdwn_to_html(block["text"]["text"])})
        elif kind == "context":
            texts = [element.get("text", "") for element in block.get("elements", [])]
            shown.append({"type": kind, "html": _clean(_slack_inline(" ".join(texts)))})
        elif kind == "actions":
            buttons = [
                {"text": element["text"]["text"], "url": element.get("url", "")}
                for element in block.get("elements", [])
            ]
            shown.append({"type": kind, "buttons": buttons})
        elif kind == "divider":
            shown.append({"type": kind})
    return shown


# --- Discord Markdown ----------------------------------------------------------------------------

_DISCORD_ESCAPE = re.compile(r"\\([\\*_~`|\[\]()<>#-])")
_DISCORD_CODE = re.compile(r"`([^`\n]+)`")
_DISCORD_LINK = re.compile(r"\[([^\[\]]+)\]\(([^()\s]+)\)")
_DISCORD_AUTOLINK = re.compile(r"&lt;(https?://[^\s&]+)&gt;")
_DISCORD_STYLES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"__(?=\S)(.+?)(?<=\S)__"), r"<u>\1</u>"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"<em>\1</em>"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"<del>\1</del>"),
]
_HEADING = re.compile(r"^(#{1,3}) (.*)$")


def _discord_inline(text: str) -> str:
    """One line of Discord Markdown as HTML; backslash-escaped characters stay literal."""
    kept: list[str] = []

    def keep(piece: str) -> str:
        kept.append(piece)
        return f"\ue000{len(kept) - 1}\ue001"

    text = _DISCORD_CODE.sub(lambda m: keep(f"<code>{html.escape(m.group(1))}</code>"), text)
    text = _DISCORD_ESCAPE.sub(lambda m: keep(html.escape(m.group(1))), text)
    text = _DISCORD_LINK.sub(
        lambda m: keep(_link(m.group(2), _discord_styles(html.escape(m.group(1))))), text
    )
    result = _discord_styles(html.escape(text, quote=False))
    result = _DISCORD_AUTOLINK.sub(lambda m: _link(html.unescape(m.group(1)), m.group(1)), result)
    while "\ue000" in result:
        result = re.sub(r"\ue000(\d+)\ue001", lambda m: kept[int(m.group(1))], result)
    heading = _HEADING.match(result)
    if heading:
        level = len(heading.group(1))
        return f"<h{level}>{heading.group(2)}</h{level}>"
    return result


def _discord_styles(text: str) -> str:
    for pattern, replacement in _DISCORD_STYLES:
        text = pattern.sub(replacement, text)
    return text


def discord_markdown_to_html(text: str) -> str:
    """A Discord embed description as Discord shows it, as safe HTML."""
    return _clean(_blocks_of_lines(text, _discord_inline))


def discord_embeds(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The payload's embeds, each with its side bar colour and the HTML of its parts."""
    shown: list[dict[str, Any]] = []
    for embed in payload.get("embeds") or []:
        timestamp = embed.get("timestamp")
        shown.append(
            {
                "title": embed.get("title", ""),
                "url": embed.get("url", ""),
                "color": f"#{int(embed.get('color') or 0):06x}",
                "description_html": discord_markdown_to_html(embed.get("description", "")),
                "footer": (embed.get("footer") or {}).get("text", ""),
                "timestamp": datetime.fromisoformat(timestamp) if timestamp else None,
            }
        )
    return shown


# --- JSON ----------------------------------------------------------------------------------------

_JSON_TOKEN = re.compile(
    r'(?P<key>"(?:\\.|[^"\\])*")(?=\s*:)|(?P<string>"(?:\\.|[^"\\])*")'
    r"|(?P<literal>\b(?:true|false|null)\b)|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"
)


def highlight_json(payload: object) -> str:
    """The payload indented, each key, string, number and literal in a span of its class."""
    text = json.dumps(payload, indent=2, ensure_ascii=False)
    parts: list[str] = []
    position = 0
    for match in _JSON_TOKEN.finditer(text):
        parts.append(html.escape(text[position : match.start()]))
        kind = match.lastgroup or "string"
        parts.append(f'<span class="json-{kind}">{html.escape(match.group())}</span>')
        position = match.end()
    parts.append(html.escape(text[position:]))
    return "".join(parts)


# --- The whole preview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelPreviews:
    subject: str
    email_html: str
    email_text: str
    slack_payload: dict[str, Any]
    discord_payload: dict[str, Any]
    webhook_payload: dict[str, Any]

    def context(self) -> dict[str, Any]:
        """What templates/publishing/admin/preview.html shows."""
        return {
            "subject": self.subject,
            "email_html": self.email_html,
            "email_text": self.email_text,
            "sender_name": settings.SITE_NAME,
            "sender_initial": (settings.SITE_NAME[:1] or "P").upper(),
            "sent_at": timezone.localtime(),
            "slack_fallback": html.unescape(self.slack_payload.get("text", "")),
            "slack_blocks": slack_blocks(self.slack_payload),
            "discord_content": self.discord_payload.get("content") or "",
            "discord_embeds": discord_embeds(self.discord_payload),
            "payloads": {
                kind: json.dumps(payload, indent=2, ensure_ascii=False)
                for kind, payload in (
                    ("slack", self.slack_payload),
                    ("discord", self.discord_payload),
                    ("webhook", self.webhook_payload),
                )
            },
            "webhook_highlighted": highlight_json(self.webhook_payload),
        }


def preview_channels(source: Source, *, viewer_name: str) -> ChannelPreviews:
    """Every channel's rendering of ``source``, the email personalised for the viewer.

    Built afresh from the builders the renderings use (no cache): a form not yet saved has no
    version to key a cache entry by.
    """
    email = build_email(source)
    email_html, email_text = email.personalize(
        name=viewer_name, preferences_url="#preferences", unsubscribe_url="#unsubscribe"
    )
    return ChannelPreviews(
        subject=email.subject,
        email_html=email_html,
        email_text=email_text,
        slack_payload=build_slack(source),
        discord_payload=build_discord(source),
        webhook_payload=build_webhook(source),
    )
