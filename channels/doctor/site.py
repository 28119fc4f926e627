"""The site's side of one-click unsubscribe: SITE_URL is https, a bulk message rendered as the
engine renders it carries List-Unsubscribe and List-Unsubscribe-Post (RFC 8058), and its
one-click URL answers a POST.

The message is built by ``channels.engine.messages.build_messages`` itself, for a recipient
that does not exist (subscriber id 0, never stored): its unsubscribe token is authentic, and
the unsubscribe page answers it as it answers an erased subscriber, changing nothing. The
POST goes through Django's test client with CSRF checks on, the way a mailbox provider's
request arrives (no cookie, no token, ``Host`` from SITE_URL): it proves the route, the
ALLOWED_HOSTS entry, the CSRF exemption and the view, without the site having to be reachable
from where the doctor runs (decision 0083).
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.test import Client
from django.utils import timezone, translation

from channels.doctor.findings import Level, Report
from channels.engine.claims import ClaimedRow, ClaimedSubscriber
from channels.engine.messages import build_messages
from channels.models import Channel, Delivery
from publishing.models import Dispatch, Publication

SOURCE = "RFC 8058; Gmail and Yahoo sender requirements (2024); Outlook (May 2025)"
ONE_CLICK = "List-Unsubscribe=One-Click"
_HTTPS_URI = re.compile(r"<(https://[^>]+)>")
#: A subscriber id no row ever has (ids start at 1).
PROBE_SUBSCRIBER_ID = 0


def check_site_url(report: Report) -> None:
    parts = urlsplit(settings.SITE_URL)
    if parts.scheme == "https" and parts.hostname:
        report.add("site_url", "SITE_URL", Level.OK, f"SITE_URL is {settings.SITE_URL}.")
        return
    report.add(
        "site_url",
        "SITE_URL",
        Level.FAILURE,
        f"SITE_URL is {settings.SITE_URL}: the links in every email, the one-click unsubscribe "
        "URL among them, are not https, and RFC 8058 requires an HTTPS URI.",
        f"SITE_URL=https://{parts.hostname or '<your public host>'}",
        "RFC 8058 3.1",
    )


def latest_version_id() -> int | None:
    """The version sent last, else the newest version of any publication (its history id)."""
    dispatch = Dispatch.objects.order_by("-created_at", "-pk").first()
    if dispatch is not None:
        return int(dispatch.version_id)
    version = Publication.history.order_by("-history_date").values_list("history_id", flat=True)
    first = version.first()
    return int(first) if first is not None else None


def render_probe(channel: Channel | None) -> bytes | None:
    """A bulk message of the latest version as the engine would send it through ``channel``
    (the default email channel; None: DEFAULT_FROM_EMAIL), untracked, or None when there is no
    publication to render."""
    version_id = latest_version_id()
    if version_id is None:
        return None
    now = timezone.now()
    row = ClaimedRow(
        pk=0,
        kind=Delivery.Kind.SUBSCRIBER,
        dispatch_id=None,
        channel_id=channel.pk if channel else 0,
        recipient="",
        raw_message=None,
        attempts=0,
        status=Delivery.Status.SENDING,
        next_attempt_at=now,
        lease_expires_at=None,
        last_error="",
        provider_message_id="",
        sent_at=None,
        created_at=now,
        uncertain_at=None,
        variant=None,
        event_id=None,
        subscriber=ClaimedSubscriber(
            pk=PROBE_SUBSCRIBER_ID,
            email="doctor@example.invalid",
            name="",
            token_key=uuid.uuid4(),
            email_format="html",
        ),
        version_id=version_id,
        is_reachable=True,
    )
    # Tracking off: the probe must store no tracked links; it changes no header either.
    probe = Channel(
        kind=channel.kind if channel else "email_file",
        config=dict(channel.config) if channel else {},
        tracking=False,
    )
    messages, _cancelled, failures = build_messages(probe, [row], now)
    if failures:
        raise RuntimeError(failures[0].error)
    return messages[0].raw if messages else None


def check_unsubscribe(report: Report, channel: Channel | None) -> None:
    """The headers of a rendered bulk message, then a one-click POST to its URL."""
    subject = "bulk email"
    raw = render_probe(channel)
    if raw is None:
        report.add(
            "list_unsubscribe",
            subject,
            Level.WARNING,
            "There is no publication yet, so no bulk message to check.",
            "Write a publication (a draft is enough) and run the doctor again.",
        )
        return
    message = email.message_from_bytes(raw, policy=email.policy.default)
    header = str(message.get("List-Unsubscribe", ""))
    post = str(message.get("List-Unsubscribe-Post", ""))
    url = next(iter(_HTTPS_URI.findall(header)), "")
    problems = 0
    if not url:
        problems += 1
        report.add(
            "list_unsubscribe",
            subject,
            Level.FAILURE,
            "A bulk message has no List-Unsubscribe header with an https URL"
            + (f" (it has: {header})" if header else "")
            + ": Gmail, Yahoo and Outlook require one-click unsubscribe of bulk senders.",
            "Every bulk message must carry List-Unsubscribe: <https://…/unsubscribe/<token>/> "
            "(subscribers.tokens.list_unsubscribe_headers), with SITE_URL set to https.",
            SOURCE,
        )
    if post.strip() != ONE_CLICK:
        problems += 1
        report.add(
            "list_unsubscribe",
            subject,
            Level.FAILURE,
            "A bulk message has no List-Unsubscribe-Post: List-Unsubscribe=One-Click header"
            + (f" (it has: {post})" if post else "")
            + ": mailbox providers will not offer one-click unsubscribe.",
            f"Every bulk message must carry the header List-Unsubscribe-Post: {ONE_CLICK} "
            "(subscribers.tokens.list_unsubscribe_headers).",
            "RFC 8058 3.1",
        )
    if url:
        problems += _check_post(report, url)
    if not problems:
        report.add(
            "list_unsubscribe",
            subject,
            Level.OK,
            "Bulk messages carry List-Unsubscribe (https) and List-Unsubscribe-Post, and the "
            "one-click URL answers a POST.",
            source=SOURCE,
        )


def _check_post(report: Report, url: str) -> int:
    parts = urlsplit(url)
    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    language = translation.get_language()
    try:
        response = client.post(
            parts.path + (f"?{parts.query}" if parts.query else ""),
            data=ONE_CLICK,
            content_type="application/x-www-form-urlencoded",
            secure=parts.scheme == "https",
            headers={"host": parts.netloc},
        )
    finally:
        translation.activate(language or settings.LANGUAGE_CODE)
    if 200 <= response.status_code < 300:
        return 0
    report.add(
        "one_click",
        "bulk email",
        Level.FAILURE,
        f"A one-click POST to {parts.scheme}://{parts.netloc}{parts.path[:24]}… answers "
        f"{response.status_code} instead of 200: mailbox providers cannot unsubscribe anyone.",
        (
            f"Add {parts.hostname} to ALLOWED_HOSTS."
            if response.status_code == 400
            else "Make the URL answer POST without a cookie or CSRF token, without a redirect."
        ),
        "RFC 8058 3.2",
    )
    return 1
