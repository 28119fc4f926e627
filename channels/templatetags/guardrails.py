"""The admin's banner of paused dispatches (decision 0085), on every admin page."""

from __future__ import annotations

from typing import Any

from django import template
from django.http import HttpRequest

from publishing.models import Dispatch

register = template.Library()

#: Who is told in the admin: who may resume or cancel (a Publisher's right).
PERMISSION = "publishing.publish_publication"


@register.inclusion_tag("admin/channels/dispatch/_paused_banner.html", takes_context=True)
def paused_dispatches(context: dict[str, Any]) -> dict[str, Any]:
    """The dispatches a guardrail paused, for a user who may resume or cancel them."""
    request: HttpRequest | None = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm(PERMISSION):
        return {"paused": []}
    paused = (
        Dispatch.objects.filter(status=Dispatch.Status.PAUSED)
        .select_related("publication")
        .order_by("paused_at")[:10]
    )
    return {"paused": list(paused)}
