"""MIME bytes for bulk email, built once per publication version and filled per recipient.

Building a message with Django's EmailMultiAlternatives costs about 640 µs; a 20,000-recipient
dispatch would spend most of its time there. ``PreparedEmail`` encodes what every recipient
shares (subject, sender, boundary) once; ``PreparedEmail.build`` then fills the personal parts
(name, links, To, Message-ID, List-Unsubscribe) into bytes already encoded, in microseconds.

The bytes use CRLF line endings, as SMTP's DATA and SES's raw content expect. A body part is
sent as 7bit or 8bit when every line fits in 998 octets (RFC 5322), quoted-printable otherwise.
"""

from __future__ import annotations

import binascii
import html as html_lib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, parseaddr

from publishing.rendering import (
    LESS_URL,
    MORE_URL,
    NAME,
    PLACEHOLDERS,
    PREFERENCES_URL,
    UNSUBSCRIBE_URL,
    EmailTemplate,
)

MAX_LINE_OCTETS = 998


def encode_header_value(value: str) -> bytes:
    """An unstructured header value: ASCII as is, anything else RFC 2047-encoded."""
    if value.isascii():
        return value.encode()
    return Header(value, "utf-8").encode(linesep="\r\n").encode()


#: An address parseaddr() would return unchanged: dot-separated atoms of common characters.
_PLAIN_ADDRESS = re.compile(
    r"[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)


def encode_address(value: str) -> bytes:
    """An address header value (``Name <addr>`` or ``addr``) safe for a header line."""
    if _PLAIN_ADDRESS.fullmatch(value):
        return value.encode()  # what parseaddr() would give, without its 50 µs of parsing
    name, address = parseaddr(value)
    if not name:
        return address.encode()
    return formataddr((name, address), charset="utf-8").encode()


def encode_body(text: str) -> tuple[bytes, bytes]:
    """Return (Content-Transfer-Encoding, body bytes with CRLF line endings)."""
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    if max(len(line) for line in data.split(b"\n")) <= MAX_LINE_OCTETS:
        encoding = b"7bit" if data.isascii() else b"8bit"
        return encoding, data.replace(b"\n", b"\r\n")
    encoded = binascii.b2a_qp(data, istext=True)
    return b"quoted-printable", encoded.replace(b"\n", b"\r\n")


#: A personal value longer than this (encoded) is built the slow, always-correct way.
MAX_VALUE_OCTETS = 300
#: The template's own placeholders, and a tracked template's open pixel and numbered click
#: links (channels.tracking); author content never holds one (neutralise_placeholders).
_PLACEHOLDER = re.compile(
    "(" + "|".join([*(re.escape(p) for p in PLACEHOLDERS), r"\[\[\[(?:open|click:\d+)\]\]\]"]) + ")"
)


def _qp(data: bytes, *, istext: bool) -> bytes:
    return binascii.b2a_qp(data, istext=istext).replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class EncodedPart:
    """One body part encoded once, with slots where the personal values go.

    ``pieces`` alternates encoded static bytes and placeholder names. In an 8bit part a value
    goes in as UTF-8; in a quoted-printable part it is encoded on its own lines, between soft
    line breaks, so no static line is ever re-wrapped.
    """

    encoding: bytes
    pieces: tuple[bytes | str, ...]
    is_html: bool

    @classmethod
    def encode(cls, template: str, *, is_html: bool) -> EncodedPart:
        text = template.replace("\r\n", "\n").replace("\r", "\n")
        budget = MAX_LINE_OCTETS - MAX_VALUE_OCTETS * max(
            (len(_PLACEHOLDER.findall(line)) for line in text.split("\n")), default=0
        )
        longest = max(len(line.encode()) for line in text.split("\n"))
        quoted = longest > budget
        pieces: list[bytes | str] = []
        for index, piece in enumerate(_PLACEHOLDER.split(text)):
            if index % 2:
                pieces.append(piece)
            elif quoted:
                pieces.append(_qp(piece.encode(), istext=True))
            else:
                pieces.append(piece.encode().replace(b"\n", b"\r\n"))
        return cls(b"quoted-printable" if quoted else b"8bit", tuple(pieces), is_html)

    def fill(self, values: Mapping[str, str]) -> bytes | None:
        """The part's bytes for one recipient; None when a value is too long for a slot."""
        out: list[bytes] = []
        for piece in self.pieces:
            if isinstance(piece, bytes):
                out.append(piece)
                continue
            value = values[piece]
            data = (html_lib.escape(value) if self.is_html else value).encode()
            if len(data) > MAX_VALUE_OCTETS or b"\n" in data or b"\r" in data:
                return None
            if self.encoding == b"quoted-printable":
                out.append(b"=\r\n" + _qp(data, istext=False) + b"=\r\n")
            else:
                out.append(data)
        return b"".join(out)


@dataclass(frozen=True)
class PreparedEmail:
    """The shared parts of one version's email, encoded once."""

    template: EmailTemplate
    from_header: bytes
    subject_header: bytes
    boundary: bytes
    text_part: EncodedPart
    html_part: EncodedPart
    #: The parts greeting a subscriber without a name ("Hello," not "Hello ,").
    anonymous_text_part: EncodedPart
    anonymous_html_part: EncodedPart
    #: A tracked template's number of click placeholders (channels.tracking); 0 untracked.
    link_count: int = 0

    @classmethod
    def prepare(
        cls, template: EmailTemplate, from_email: str, *, link_count: int = 0
    ) -> PreparedEmail:
        anonymous_html, anonymous_text = template.variant("")
        return cls(
            link_count=link_count,
            template=template,
            from_header=encode_address(from_email),
            subject_header=encode_header_value(template.subject),
            boundary=b"=_" + secrets.token_hex(16).encode(),
            text_part=EncodedPart.encode(template.text, is_html=False),
            html_part=EncodedPart.encode(template.html, is_html=True),
            anonymous_text_part=EncodedPart.encode(anonymous_text, is_html=False),
            anonymous_html_part=EncodedPart.encode(anonymous_html, is_html=True),
        )

    def _parts(
        self,
        name: str,
        preferences_url: str,
        unsubscribe_url: str,
        extra: Mapping[str, str],
        feedback: tuple[str, str],
    ) -> tuple[tuple[bytes, bytes], tuple[bytes, bytes]]:
        name = name.strip()
        values = {
            NAME: name,
            PREFERENCES_URL: preferences_url,
            UNSUBSCRIBE_URL: unsubscribe_url,
            MORE_URL: feedback[0],
            LESS_URL: feedback[1],
            **extra,
        }
        text_part, html_part = (
            (self.text_part, self.html_part)
            if name
            else (self.anonymous_text_part, self.anonymous_html_part)
        )
        text = text_part.fill(values)
        html = html_part.fill(values)
        if text is not None and html is not None:
            return (text_part.encoding, text), (html_part.encoding, html)
        # A value too long for a slot: personalise and encode this recipient in full.
        html_str, text_str = self.template.personalize(
            name=name,
            preferences_url=preferences_url,
            unsubscribe_url=unsubscribe_url,
            more_url=feedback[0],
            less_url=feedback[1],
        )
        for placeholder, value in extra.items():
            html_str = html_str.replace(placeholder, html_lib.escape(value))
            text_str = text_str.replace(placeholder, value)
        return encode_body(text_str), encode_body(html_str)

    def build(
        self,
        *,
        to: str,
        message_id: str,
        date: str,
        name: str,
        preferences_url: str,
        unsubscribe_url: str,
        headers: Mapping[str, str],
        with_html: bool = True,
        tracking: Mapping[str, str] | None = None,
        feedback: tuple[str, str] = ("#", "#"),
    ) -> bytes:
        """Return the MIME bytes for one recipient.

        ``message_id`` is the bare id (without angle brackets); ``headers`` are extra header
        lines (List-Unsubscribe, X-Delivery-ID), whose values must be ASCII. ``tracking``
        fills a tracked template's open and click placeholders (channels.tracking);
        ``feedback`` the recipient's "more like this" and "less like this" URLs.
        """
        (text_encoding, text_body), (html_encoding, html_body) = self._parts(
            name, preferences_url, unsubscribe_url, tracking or {}, feedback
        )
        lines = [
            b"From: " + self.from_header,
            b"To: " + encode_address(to),
            b"Subject: " + self.subject_header,
            b"Date: " + date.encode(),
            b"Message-ID: <" + message_id.encode() + b">",
            b"MIME-Version: 1.0",
        ]
        lines.extend(f"{key}: {value}".encode() for key, value in headers.items())
        if not with_html:
            lines.append(b"Content-Type: text/plain; charset=utf-8")
            lines.append(b"Content-Transfer-Encoding: " + text_encoding)
            return b"\r\n".join(lines) + b"\r\n\r\n" + text_body + b"\r\n"
        boundary = self.boundary
        lines.append(b'Content-Type: multipart/alternative; boundary="' + boundary + b'"')
        return b"".join(
            [
                b"\r\n".join(lines),
                b"\r\n\r\n--",
                boundary,
                b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: ",
                text_encoding,
                b"\r\n\r\n",
                text_body,
                b"\r\n--",
                boundary,
                b"\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: ",
                html_encoding,
                b"\r\n\r\n",
                html_body,
                b"\r\n--",
                boundary,
                b"--\r\n",
            ]
        )
