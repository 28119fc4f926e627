"""Template context every page gets: the site's name and public address.

Part of the config toolkit (it imports no app): the public theme's base template
(templates/base.html) names the site in its header and footer, and publication pages build their
canonical and Open Graph URLs from SITE_URL, on pages whose views pass neither.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def site(request: HttpRequest) -> dict[str, str]:
    """``site_name`` and ``site_url`` (no trailing slash) for every template."""
    return {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL}
