"""Signed tokens in the links sent to subscribers, and the URLs and headers built from them.

Contract used by the delivery engine, which must not query per recipient:
``manage_token(subscriber_id, token_key)`` needs only two columns it already loaded;
``preferences_url``, ``unsubscribe_url`` and ``list_unsubscribe_headers`` build on the token.
Rotating a subscriber's ``token_key`` invalidates every link sent before.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.urls import reverse

MANAGE_SALT = "subscribers.manage"


def manage_token(subscriber_id: int, token_key: uuid.UUID | str) -> str:
    """A token for the preference center and one-click unsubscribe links."""
    return signing.dumps([subscriber_id, str(token_key)], salt=MANAGE_SALT, compress=True)


def preferences_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:preferences", args=[token])


def unsubscribe_url(token: str) -> str:
    return settings.SITE_URL + reverse("subscribers:unsubscribe", args=[token])


def list_unsubscribe_headers(token: str) -> dict[str, str]:
    """RFC 2369 / RFC 8058 headers for a bulk email to this subscriber."""
    targets = [f"<{unsubscribe_url(token)}>"]
    inbound = getattr(settings, "UNSUBSCRIBE_MAILTO", "")
    if inbound:
        targets.append(f"<mailto:{inbound}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
