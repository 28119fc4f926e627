"""``{% subscribe_box %}``: the sign-up form on any public page (archive, publication, topic).

A template tag rather than a context variable, so the publishing app's views need not know the
subscribers app: the public theme (templates/base.html, docs/theming.md) places the box, and an
operator's template can move or drop it. The form posts to the sign-up page, which answers
errors on its own page. Nothing is ticked in advance: consent must be an act (decision 0075).
"""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.utils import translation

from subscribers.forms import SignupForm

register = template.Library()


@register.inclusion_tag("subscribers/_subscribe_box.html", takes_context=True)
def subscribe_box(context: template.Context, heading: str = "") -> dict[str, Any]:
    """An empty sign-up form in the page's language; ``heading`` replaces the default title.

    Django's inclusion tags carry the page's CSRF token over to the included template.
    """
    return {
        "form": SignupForm(),
        "language": translation.get_language() or settings.LANGUAGE_CODE,
        "heading": heading,
        "site_name": context.get("site_name") or settings.SITE_NAME,
    }
