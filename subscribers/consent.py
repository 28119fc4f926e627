"""Where a subscriber's action came from, and the consent log entry that records it.

Every service that changes what someone receives logs a ConsentEvent with its Origin: the
channel (``via``), the form version, the client's address cut to its network, the user agent.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from subscribers.models import ConsentEvent, Subscriber

USER_AGENT_MAX_LENGTH = 500


def truncate_ip(value: str | None) -> str | None:
    """An IPv4 address cut to its /24, an IPv6 address to its /48; None when absent or malformed."""
    if not value:
        return None
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


def client_ip(request: HttpRequest) -> str | None:
    """The client address as the rate limits see it (RATELIMIT_IP_META_KEY behind a proxy)."""
    key = settings.RATELIMIT_IP_META_KEY or "REMOTE_ADDR"
    value = request.META.get(key, "")
    return value.split(",")[0].strip() or None


@dataclass(frozen=True)
class Origin:
    """Where an action came from, as the consent log records it."""

    via: str
    form_version: str = ""
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, *, via: str, form_version: str = "") -> Origin:
        return cls(
            via=via,
            form_version=form_version,
            ip_address=truncate_ip(client_ip(request)),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH],
        )


def log_consent(
    action: str,
    origin: Origin,
    *,
    subscriber: Subscriber | None,
    hashed: str,
    detail: dict[str, Any] | None = None,
) -> ConsentEvent:
    """Record one consent event; ``detail`` is stored with the origin's ``via``."""
    return ConsentEvent.objects.create(
        subscriber=subscriber,
        email_hash=hashed,
        action=action,
        form_version=origin.form_version,
        ip_address=origin.ip_address,
        user_agent=origin.user_agent,
        detail={"via": origin.via, **(detail or {})},
    )
