"""The transactional emails of the subscribers app (confirmation, "already subscribed"), sent
through Django's mail API after commit, and the count behind the daily limit per address."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import css_inline
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import translation

from config.mail import site_message_id
from subscribers import tokens
from subscribers.links import manage_token_for
from subscribers.models import ConsentEvent, Subscriber

# The services' logger: these lines have always been logged under that name.
logger = logging.getLogger("subscribers.services")

#: As publication emails are inlined (publishing/rendering/emails.py): mail programs drop
#: <style> blocks, so the shared styles (templates/emails/_styles.html) go into style="".
_inliner = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False)


def send_mail(subscriber_id: int, template: str, context_extra: dict[str, Any]) -> None:
    """Render ``templates/subscribers/email/<template>.*`` in the subscriber's language and send it.

    The HTML part shares the publications' design (``_layout.html``, CSS inlined); the plain
    text part says the same. Runs after commit, so a rolled-back sign-up sends nothing.
    """
    subscriber = Subscriber.objects.filter(pk=subscriber_id).first()
    if subscriber is None:
        return
    token = manage_token_for(subscriber)
    context = {
        "subscriber": subscriber,
        "site_name": settings.SITE_NAME,
        "site_url": settings.SITE_URL,
        "language": subscriber.locale,
        "preferences_url": tokens.preferences_url(token),
        **context_extra,
    }
    with translation.override(subscriber.locale):
        subject = " ".join(
            render_to_string(f"subscribers/email/{template}_subject.txt", context).split()
        )
        text = render_to_string(f"subscribers/email/{template}.txt", context)
        html = _inliner.inline(
            render_to_string(f"subscribers/email/{template}.html", {**context, "subject": subject})
        )
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        # Transactional mail the person asked for: lets the mail backend tell it from bulk mail.
        headers={
            "Auto-Submitted": "auto-generated",
            "X-Publishing-Kind": "transactional",
            # The site's domain, as bulk mail's, not Django's DNS_NAME (``localhost``).
            "Message-ID": site_message_id(),
        },
    )
    message.attach_alternative(html, "text/html")
    message.send()
    logger.info("subscribers: sent %s email to subscriber %s", template, subscriber_id)


def send_on_commit(subscriber_id: int, template: str, **context: Any) -> None:
    """Send the email once the current transaction commits; a failure is logged, not raised."""
    transaction.on_commit(lambda: send_mail(subscriber_id, template, context), robust=True)


def emails_sent_today(hashed: str, now: datetime) -> int:
    """How many sign-up emails went to this address hash in the 24 hours before ``now``."""
    return ConsentEvent.objects.filter(
        email_hash=hashed,
        action=ConsentEvent.Action.SIGNUP,
        created_at__gte=now - timedelta(days=1),
        detail__email_sent=True,
    ).count()
