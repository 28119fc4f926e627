"""The preview's chat mock-ups and coloured JSON: drawn from the real payloads, formatting shown,
author text never turned into markup."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from publishing.previews import (
    discord_embeds,
    discord_markdown_to_html,
    highlight_json,
    preview_channels,
    slack_blocks,
    slack_mrkdwn_to_html,
)
from publishing.rendering.broadcast import build_discord, build_slack
from publishing.rendering.source import Source

XSS = (Path(__file__).parent.parent / "fixtures" / "xss" / "owasp_vectors.txt").read_text()


def _source(body: str, title: str = "A title", summary: str = "") -> Source:
    return Source(
        publication_id=None,
        version_id=None,
        version_number=None,
        title=title,
        slug="a-title",
        summary=summary,
        body=body,
        language="en",
        published_at=None,
        topics=(("news", "News & <b>views</b>"),),
    )


def test_slack_mrkdwn_formatting_is_drawn() -> None:
    html = slack_mrkdwn_to_html(
        "*bold* _it_ ~gone~ `x<y` <https://e.org/a?b=1&amp;c=2|a &lt;link&gt;>\n> quoted\n"
        "```\n&lt;code&gt;\n```"
    )

    assert "<strong>bold</strong>" in html
    assert "<em>it</em>" in html
    assert "<del>gone</del>" in html
    assert "<code>x&lt;y</code>" in html
    link = '<a href="https://e.org/a?b=1&amp;c=2" rel="noopener noreferrer">a &lt;link&gt;</a>'
    assert link in html
    assert "<blockquote>quoted</blockquote>" in html
    assert "<pre>&lt;code&gt;</pre>" in html


def test_discord_markdown_formatting_is_drawn_and_escapes_stay_literal() -> None:
    html = discord_markdown_to_html(
        "# Head\n**bold** *it* __under__ ~~gone~~ [a link](https://e.org/) \\*not it\\*\n"
        "`<b>` <https://e.org/x>"
    )

    assert "<h1>Head</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>it</em>" in html
    assert "<u>under</u>" in html and "<del>gone</del>" in html
    assert '<a href="https://e.org/" rel="noopener noreferrer">a link</a>' in html
    assert "*not it*" in html
    assert "<code>&lt;b&gt;</code>" in html
    assert '<a href="https://e.org/x" rel="noopener noreferrer">https://e.org/x</a>' in html


@pytest.mark.django_db
def test_no_vector_becomes_markup_in_a_mockup() -> None:
    source = _source(XSS, title='<script>alert("t")</script>', summary="<img src=x onerror=1>")
    shown = [block.get("html", "") for block in slack_blocks(build_slack(source))] + [
        embed["description_html"] for embed in discord_embeds(build_discord(source))
    ]

    for html in shown:
        assert not re.search(r"<(script|img|iframe|svg|style|object)", html, re.IGNORECASE)
        assert not re.search(r"<[^>]*\son\w+\s*=", html, re.IGNORECASE)
        assert not re.search(r'href="\s*(javascript|data|vbscript):', html, re.IGNORECASE)


@pytest.mark.django_db
def test_the_mockups_come_from_the_payloads_the_backends_post() -> None:
    source = _source("Some **bold** text.", summary="Short")
    slack = build_slack(source)
    discord = build_discord(source)

    blocks = slack_blocks(slack)
    (embed,) = discord_embeds(discord)

    assert [block["type"] for block in blocks] == [b["type"] for b in slack["blocks"]]
    assert blocks[0]["text"] == "A title"
    assert blocks[-1]["buttons"] == [{"text": "Read online", "url": source.url}]
    assert embed["color"] == f"#{discord['embeds'][0]['color']:06x}" == "#2e7d32"
    assert embed["title"] == "A title"
    assert embed["footer"] == "News & <b>views</b>"  # escaped by the template, not here
    assert "<strong>bold</strong>" in embed["description_html"]


def test_highlighted_json_is_the_indented_payload() -> None:
    payload = {"a": "x<y", "n": -1.5, "ok": True, "none": None, "list": ['"q"']}

    html = highlight_json(payload)

    assert re.sub(r"<[^>]+>", "", html).replace("&lt;", "<").replace("&quot;", '"') == (
        json.dumps(payload, indent=2).replace("\\u003c", "<")
    )
    assert '<span class="json-key">&quot;a&quot;</span>' in html
    assert '<span class="json-string">&quot;x&lt;y&quot;</span>' in html
    assert '<span class="json-number">-1.5</span>' in html
    assert '<span class="json-literal">true</span>' in html


@pytest.mark.django_db
def test_the_email_preview_greets_the_viewer() -> None:
    previews = preview_channels(_source("Hi"), viewer_name="Alice")

    assert "Hello Alice," in previews.email_html
    assert previews.subject == "A title"
