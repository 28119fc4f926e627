"""The domain of every Message-ID the site writes, bulk mail and site mail alike.

Part of the config toolkit: apps may import it; it imports no app. Django's ``make_msgid`` would
otherwise use ``DNS_NAME`` (the machine's host name: ``localhost`` in a container), which says
nothing of the sender and which some filters score as spam.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import make_msgid


def message_id_domain() -> str:
    """DELIVERY_MESSAGE_ID_DOMAIN, else SITE_URL's host (``localhost`` only if it has none)."""
    return (
        settings.DELIVERY_MESSAGE_ID_DOMAIN or urlsplit(settings.SITE_URL).hostname or "localhost"
    )


def site_message_id() -> str:
    """A fresh ``<...@domain>`` Message-ID for a message sent through Django's mail API."""
    return make_msgid(domain=message_id_domain())
