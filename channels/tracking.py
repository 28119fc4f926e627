"""Engagement tracking: signed open-pixel and click URLs bound to (delivery, link index), the
links of a version's message rewritten to them, and each hit appended as an event
(decision 0078).

A tracked URL carries the delivery id, the link index and an HMAC of both: nothing in it
names the target, which the redirect reads from ``TrackedLink`` (the version's links in
order). An altered id, index or signature, or an index the version does not have, is
refused with 400; no URL taken from the request is ever redirected to (no open redirect).

Hits are appended (one INSERT each), never counted on the delivery row; classifying them as
human, proxy or machine happens afterwards, in bulk (channels.engagement).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html as html_lib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django.utils.encoding import force_bytes

from channels import tracking_buffer
from channels.models import Delivery, Digest, EngagementEvent, TrackedLink

#: The per-recipient placeholders a tracked template holds (filled by channels.engine.mime).
OPEN_URL = "[[[open]]]"
CLICK_PREFIX = "[[[click:"
SALT = "channels.tracking"
SIGNATURE_BYTES = 16
USER_AGENT_MAX_LENGTH = 512
#: The surface of an email's links (broadcast kinds use their kind: "slack", "discord").
EMAIL = "email"
#: Broadcast kinds whose links are click-tracked (a webhook's receiver is a program).
CLICK_TRACKED_BROADCASTS = frozenset({"slack", "discord"})

#: A 1x1 transparent GIF (43 bytes), the open pixel.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def click_placeholder(index: int) -> str:
    return f"{CLICK_PREFIX}{index}]]]"


class TrackingSigner:
    """HMAC-SHA256 over ``kind:delivery:index`` with a key derived once from SECRET_KEY (and
    one per SECRET_KEY_FALLBACKS entry, so links sent before a key rotation keep working)."""

    def __init__(self) -> None:
        secrets = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
        self._keys = [
            hashlib.sha256(force_bytes(SALT) + force_bytes(key)).digest() for key in secrets
        ]

    def _sign(self, key: bytes, value: str) -> str:
        digest = hmac.new(key, value.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, value: str) -> str:
        return self._sign(self._keys[0], value)

    def verify(self, value: str, signature: str) -> bool:
        return any(hmac.compare_digest(self._sign(key, value), signature) for key in self._keys)


@lru_cache(maxsize=4)
def _signer(secret: str, fallbacks: tuple[str, ...]) -> TrackingSigner:
    return TrackingSigner()


def signer() -> TrackingSigner:
    """The signer for the current SECRET_KEY and fallbacks (rebuilt when they change)."""
    return _signer(settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


def open_url(delivery_id: int, *, sign: TrackingSigner | None = None) -> str:
    signature = (sign or signer()).sign(f"o:{delivery_id}")
    return f"{settings.SITE_URL}/t/o/{delivery_id}/{signature}.gif"


#: The letter a click URL names its surface by: whose links its position counts in.
SURFACE_CODES = {EMAIL: "e", "slack": "s", "discord": "d", "digest": "g"}
CODE_SURFACES = {code: surface for surface, code in SURFACE_CODES.items()}


@dataclass(frozen=True)
class LinkRef:
    """Which links a click URL's position counts in: a version's on a surface, or (surface
    ``digest``, version 0) the digest's own. ``translation_id``: the history row of the
    translation the message carried (decision 0082), whose links are stored apart."""

    surface: str
    version_id: int
    translation_id: int = 0

    @property
    def code(self) -> str:
        code = f"{SURFACE_CODES[self.surface]}{self.version_id}"
        return f"{code}t{self.translation_id}" if self.translation_id else code

    @property
    def stored_surface(self) -> str:
        """The ``TrackedLink.surface`` these links are stored under."""
        return translated_surface(self.surface, self.translation_id)

    @classmethod
    def parse(cls, code: str) -> LinkRef | None:
        surface = CODE_SURFACES.get(code[:1])
        match = _REF_NUMBERS.fullmatch(code[1:])
        if surface is None or match is None:
            return None
        return cls(surface, int(match.group(1)), int(match.group(2) or 0))


_REF_NUMBERS = re.compile(r"([0-9]+)(?:t([1-9][0-9]*))?")


def translated_surface(surface: str, translation_id: int | None) -> str:
    """Where a translated message's links are stored: the surface and the translation's
    history row (``email-t12``); the surface itself for the original."""
    return f"{surface}-t{translation_id}" if translation_id else surface


DIGEST_LINKS = LinkRef("digest", 0)


def click_url(
    delivery_id: int, ref: LinkRef, index: int, *, sign: TrackingSigner | None = None
) -> str:
    """``/t/c/<delivery>/<surface letter><version>/<position>/<signature>``: the signature
    covers all three, so none can be changed; the target is looked up, never carried."""
    signature = (sign or signer()).sign(f"c:{delivery_id}:{ref.code}:{index}")
    return f"{settings.SITE_URL}/t/c/{delivery_id}/{ref.code}/{index}/{signature}"


def tracking_values(
    delivery_id: int, ref: LinkRef, link_count: int, sign: TrackingSigner
) -> dict[str, str]:
    """The placeholders of a tracked email filled for one delivery."""
    values = {OPEN_URL: open_url(delivery_id, sign=sign)}
    for index in range(link_count):
        values[click_placeholder(index)] = click_url(delivery_id, ref, index, sign=sign)
    return values


#: ``href="..."`` of an <a> tag in the rendered (sanitised, CSS-inlined) HTML.
_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_TRACKABLE = re.compile(r"https?://", re.IGNORECASE)


@dataclass(frozen=True)
class TrackedHtml:
    html: str
    links: tuple[str, ...]


def track_html(html: str, *, keep: Iterable[str] = ()) -> TrackedHtml:
    """Rewrite each http(s) link of ``html`` to a click placeholder and add the open pixel.

    ``keep`` lists hrefs left alone (the preference and unsubscribe placeholders: those links
    are the subscriber's own and are never tracked). Returns the HTML and the targets in
    placeholder order; the same target twice is two links (clicks per link position).
    """
    kept = set(keep)
    links: list[str] = []

    def rewrite(match: re.Match[str]) -> str:
        href = match.group(2)
        if href in kept or not _TRACKABLE.match(html_lib.unescape(href)):
            return match.group(0)
        links.append(html_lib.unescape(href))
        return match.group(1) + click_placeholder(len(links) - 1) + match.group(3)

    rewritten = _HREF.sub(rewrite, html)
    pixel = f'<img src="{OPEN_URL}" width="1" height="1" alt="" style="display:block;border:0">'
    closing = rewritten.lower().rfind("</body>")
    if closing == -1:
        rewritten += pixel
    else:
        rewritten = rewritten[:closing] + pixel + rewritten[closing:]
    return TrackedHtml(rewritten, tuple(links))


#: An http(s) URL in a broadcast payload's text (Slack's ``<url|text>``, Discord's
#: ``[text](url)`` and bare URLs), up to a delimiter those formats use.
_URL_IN_TEXT = re.compile(r"https?://[^\s<>|()\"']+", re.IGNORECASE)


def track_payload(
    payload: Any, delivery_id: int, ref: LinkRef, sign: TrackingSigner
) -> tuple[Any, list[str]]:
    """A broadcast payload (Slack blocks, Discord embeds) with every http(s) URL in its strings
    replaced by a click URL for ``delivery_id``; returns it and the targets in order."""
    links: list[str] = []

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, str):

            def replace(match: re.Match[str]) -> str:
                links.append(match.group(0))
                return click_url(delivery_id, ref, len(links) - 1, sign=sign)

            return _URL_IN_TEXT.sub(replace, value)
        return value

    return walk(payload), links


def store_links(version_id: int, surface: str, links: Sequence[str]) -> None:
    """Record a version's links on a surface once (concurrent workers may both try)."""
    if not links:
        return
    TrackedLink.objects.bulk_create(
        [
            TrackedLink(version_id=version_id, surface=surface, index=index, url=url[:2048])
            for index, url in enumerate(links)
        ],
        ignore_conflicts=True,
    )


#: Versions' links per (version, surface), per process; bounded, never holding an empty list.
_LINKS: dict[tuple[int, str], tuple[str, ...]] = {}
LINKS_CACHE_SIZE = 256


def _version_links(version_id: int, surface: str) -> tuple[str, ...]:
    """A version's links on a surface, read once per process: they never change once stored
    (``store_links`` runs before the first message of the version leaves)."""
    key = (version_id, surface)
    if key not in _LINKS:
        links = tuple(
            TrackedLink.objects.filter(version_id=version_id, surface=surface)
            .order_by("index")
            .values_list("url", flat=True)
        )
        if not links:
            return links
        if len(_LINKS) >= LINKS_CACHE_SIZE:
            _LINKS.clear()
        _LINKS[key] = links
    return _LINKS[key]


def link_target(delivery_id: int, ref: LinkRef, index: int) -> str | None:
    """Where link ``index`` of ``ref``'s links leads, or None when there is no such link.

    A version's links come from this process's cache (no query after the first click on a
    version); a digest's are read from its row.
    """
    if ref.surface == DIGEST_LINKS.surface:
        links = (
            Digest.objects.filter(delivery_id=delivery_id).values_list("links", flat=True).first()
        )
        found = tuple(links) if isinstance(links, list) else ()
    else:
        found = _version_links(ref.version_id, ref.stored_surface)
    return str(found[index]) if 0 <= index < len(found) else None


def client_ip(meta: dict[str, Any]) -> str | None:
    """The address the hit came from: REMOTE_ADDR (a proxy in front sets it through the WSGI
    server's forwarded-allow-ips, never from a header read here)."""
    address = str(meta.get("REMOTE_ADDR") or "")
    return address or None


@lru_cache(maxsize=4)
def _insert_sql(vendor: str) -> str:
    """The INSERT of ``record``, built once from the models' table and column names.

    PostgreSQL: an event is worth less than the reader's wait for a disk flush, so the
    statement commits without waiting for the WAL (set_config(..., true) lasts for the
    statement's own transaction only; a database crash may lose the last moment's events,
    never corrupt anything). Delivery rows keep the default, synchronous commit.
    """
    event = EngagementEvent._meta
    delivery = Delivery._meta
    names = ("delivery", "kind", "link_index", "occurred_at", "method", "user_agent", "ip")
    fields = [event.get_field(name) for name in names]
    columns = ", ".join(
        [*(str(getattr(field, "column", "")) for field in fields), "verdict", "reason"]
    )
    quick = vendor == "postgresql"
    prefix = (
        "WITH quick AS (SELECT set_config('synchronous_commit', 'off', true)) " if quick else ""
    )
    source = "FROM quick " if quick else ""
    exists = f"SELECT 1 FROM {delivery.db_table} WHERE {delivery.pk.column} = %s"  # noqa: S608 (names from models)
    placeholders = ", ".join(["%s"] * len(names))
    return (
        f"{prefix}INSERT INTO {event.db_table} ({columns}) "
        f"SELECT {placeholders}, '', '' {source}WHERE EXISTS ({exists})"
    )


def record(
    delivery_id: int,
    kind: str,
    *,
    method: str,
    user_agent: str,
    ip: str | None,
    link_index: int | None = None,
) -> None:
    """Append one hit: one INSERT ... SELECT (one round trip), which writes nothing when the
    delivery no longer exists (erased): no SELECT before each hit. With a buffer
    (channels.tracking_buffer, Redis) the hit is appended there instead and moved in bulk."""
    now = timezone.now()
    if tracking_buffer.push(
        [delivery_id, kind, link_index, now.isoformat(), method[:8], user_agent[:512], ip]
    ):
        return
    sql = _insert_sql(connection.vendor)
    values: list[Any] = [
        delivery_id,
        kind,
        link_index,
        connection.ops.adapt_datetimefield_value(now),
        method[:8],
        user_agent[:USER_AGENT_MAX_LENGTH],
        ip,
        delivery_id,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


def forget_engagement(sender: object, subscriber_id: int | None = None, **_: object) -> None:
    """Receiver of subscribers' ``subscriber_erased``: the erased subscriber's open and click
    events keep their time and verdict (the counts stay true) but lose the user agent and
    address they came with."""
    if subscriber_id is None:
        return
    EngagementEvent.objects.filter(delivery__subscriber_id=subscriber_id).update(
        user_agent="", ip=None
    )
