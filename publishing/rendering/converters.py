"""Sanitised HTML to plain text (the email's text alternative), Slack mrkdwn and Discord Markdown.

The HTML is parsed into a small tree and written out by a flavor: plain text, or a chat's own
mark-up with every character of author text that the chat would read as mark-up escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import quote, urlsplit

from publishing.rendering.markup import ALLOWED_URL_SCHEMES, WHITESPACE


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


class SlackFlavor(_Flavor):
    """Slack mrkdwn; ``escape`` keeps author text from making links or mentions."""

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


class DiscordFlavor(_Flavor):
    """Discord Markdown; ``escape`` keeps author text from formatting or mentioning."""

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
            return flavor.escape(WHITESPACE.sub(" ", node))
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
    return _Converter(SlackFlavor()).blocks(_parse(html))


def html_to_discord(html: str) -> str:
    """Sanitised HTML to Discord Markdown, with author text's Markdown characters escaped."""
    return _Converter(DiscordFlavor()).blocks(_parse(html))
