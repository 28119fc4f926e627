"""/metrics (the delivery engine in the Prometheus text format, for a token or allowed
addresses), /hooks/ses/ (SES bounces and complaints through Amazon SNS), and the engagement
tracking URLs /t/o/ (open pixel) and /t/c/ (click redirect), decision 0078."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseRedirect,
    JsonResponse,
)
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from channels import sns, tracking
from channels.exceptions import SnsMessageError
from channels.feedback import record_ses_feedback
from channels.metrics import DeliveryCollector
from channels.models import EngagementEvent

logger = logging.getLogger(__name__)

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


#: SNS posts its JSON as text/plain; a person testing with curl may say application/json.
SNS_CONTENT_TYPES = frozenset({"text/plain", "application/json"})


@csrf_exempt
@never_cache
@require_POST
def ses_feedback(request: HttpRequest) -> JsonResponse:
    """Amazon SNS posts SES feedback here (decision 0043). Answers JSON.

    200 ``{"result": ...}`` once handled (``processed``, ``replayed``, ``ignored``,
    ``confirmed``, ``unsubscribed``); 4xx ``{"error": code, "detail": sentence}`` for a message
    refused (nothing stored), 502 when an SNS URL we must fetch does not answer (SNS retries).
    Uses no session and no CSRF token: the SNS signature is the authentication.
    """
    if request.content_type not in SNS_CONTENT_TYPES:
        return JsonResponse(
            {
                "error": "unsupported_media_type",
                "detail": f"Content-Type {request.content_type!r}: send text/plain or "
                "application/json.",
            },
            status=415,
        )
    try:
        message = sns.verified_message(request.body, timezone.now())
        kind = message["Type"]
        if kind == sns.SUBSCRIPTION_CONFIRMATION:
            sns.confirm_subscription(message)
            logger.info("ses feedback: subscription to %s confirmed", message["TopicArn"])
            return JsonResponse({"result": "confirmed"})
        if kind == sns.UNSUBSCRIBE_CONFIRMATION:
            logger.warning(
                "ses feedback: endpoint unsubscribed from %s; bounces and complaints no longer "
                "arrive from it",
                message["TopicArn"],
            )
            return JsonResponse({"result": "unsubscribed"})
        outcome = record_ses_feedback(message)
    except SnsMessageError as exc:
        logger.warning("ses feedback: refused (%s): %s", exc.code, exc.message)
        return JsonResponse({"error": exc.code, "detail": exc.message}, status=exc.status)
    return JsonResponse(
        {
            "result": outcome.result,
            "type": outcome.type,
            "subtype": outcome.subtype,
            "suppressed": outcome.suppressed,
        }
    )


#: A tracking URL is never cached: each fetch is one event (browsers and proxies must ask).
NO_STORE = "no-store, no-cache, must-revalidate, private, max-age=0"
INVALID_LINK = "This link is not valid: it was changed or cut short. Nothing was recorded."


def _hit(request: HttpRequest, delivery_id: int, kind: str, index: int | None = None) -> None:
    tracking.record(
        delivery_id,
        kind,
        method=request.method or "GET",
        user_agent=request.headers.get("User-Agent", ""),
        ip=tracking.client_ip(request.META),
        link_index=index,
    )


@require_safe
def tracking_open(request: HttpRequest, delivery_id: int, signature: str) -> HttpResponse:
    """The open pixel: a 1x1 GIF; the fetch is appended as an open event (signed URLs only)."""
    if not tracking.signer().verify(f"o:{delivery_id}", signature):
        return HttpResponseBadRequest(INVALID_LINK, content_type="text/plain; charset=utf-8")
    _hit(request, delivery_id, EngagementEvent.Kind.OPEN)
    response = HttpResponse(tracking.PIXEL, content_type="image/gif")
    response["Cache-Control"] = NO_STORE
    return response


@require_safe
def tracking_click(
    request: HttpRequest, delivery_id: int, ref: str, index: int, signature: str
) -> HttpResponse:
    """A tracked link: 302 to link ``index`` of the links ``ref`` names (a version's on a
    surface, or a digest's), read from the stored links, never from the request; 400 when the
    signature, the reference or the index is wrong."""
    links = tracking.LinkRef.parse(ref)
    if links is None or not tracking.signer().verify(f"c:{delivery_id}:{ref}:{index}", signature):
        return HttpResponseBadRequest(INVALID_LINK, content_type="text/plain; charset=utf-8")
    target = tracking.link_target(delivery_id, links, index)
    if target is None:
        return HttpResponseBadRequest(INVALID_LINK, content_type="text/plain; charset=utf-8")
    _hit(request, delivery_id, EngagementEvent.Kind.CLICK, index)
    response = HttpResponseRedirect(target)
    response["Cache-Control"] = NO_STORE
    return response
