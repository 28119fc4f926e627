"""/metrics: the delivery engine in the Prometheus text format, for a token or allowed addresses."""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from channels.metrics import DeliveryCollector

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed_networks() -> tuple[Network, ...]:
    """METRICS_ALLOWED_IPS parsed; raises ValueError naming the variable and the bad entry."""
    return _parse_networks(tuple(settings.METRICS_ALLOWED_IPS))


@lru_cache(maxsize=8)
def _parse_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"METRICS_ALLOWED_IPS: {entry!r} is not an IP address or network (CIDR)."
            ) from None
    return tuple(networks)


def has_metrics_access(request: HttpRequest) -> bool:
    """A valid ``Authorization: Bearer <METRICS_TOKEN>``, or a client address in an allowed
    network. The address is REMOTE_ADDR: a proxy in front must be the one allowed, not its
    clients (X-Forwarded-For is not trusted here)."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        given = header.removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in allowed_networks())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """404 while /metrics is not configured (no token, no address), 403 for anyone else."""
    if not settings.METRICS_TOKEN and not settings.METRICS_ALLOWED_IPS:
        raise Http404("Metrics are not enabled.")
    if not has_metrics_access(request):
        return HttpResponseForbidden("Metrics need a bearer token or an allowed address.\n")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeliveryCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
