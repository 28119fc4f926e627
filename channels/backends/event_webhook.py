"""Events to an integrator's endpoint (decision 0084): one signed JSON POST per event.

Standard Webhooks: ``webhook-id`` is the event's id (``evt_123``, the same on every retry and
replay, so a receiver can drop a repeat), ``webhook-timestamp`` the time of this attempt and
``webhook-signature`` ``v1,<HMAC-SHA256>`` of ``id.timestamp.body`` with the endpoint's
``whsec_`` secret. For a while after a rotation (``previous_secret_until``) a second
signature made with the previous secret follows, space-separated, as the specification
allows: a receiver holding either secret verifies the request.

Unlike a publication webhook, any answer but 2xx is retried (the endpoint's schedule,
``EVENT_RETRY_SCHEDULE_SECONDS``), except 410 Gone, which disables the endpoint; every
answer's status, latency and the first characters of its body are kept for the admin.
The URL passes the outbound guard when saved and as each request leaves (decision 0071).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import requests
from django import forms
from standardwebhooks import Webhook

from channels.backends.base import (
    Message,
    Outcome,
    OutcomeStatus,
    ResponseInfo,
    register,
)
from channels.backends.utils import (
    http_status_text,
    network_error_text,
    parse_retry_after,
    refused_outcome_status,
    requests_failure,
    validate_outbound_url,
)
from channels.backends.webhook import WebhookBackend, WebhookConfigForm
from config.outbound import OutboundAddressError

#: Characters of an endpoint's answer kept per attempt.
EXCERPT_LENGTH = 500


class EventWebhookConfigForm(WebhookConfigForm):
    """The publication webhook's settings (URL, ``whsec_`` secret, timeout) and, during a
    rotation, the previous secret and until when it signs too."""

    url = forms.URLField(
        label="Endpoint URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where events are POSTed as JSON (a public address).",
        validators=[validate_outbound_url],
    )
    previous_secret = forms.CharField(max_length=200, required=False)
    previous_secret_until = forms.DateTimeField(required=False)

    def clean_previous_secret(self) -> str:
        value: str = self.cleaned_data.get("previous_secret") or ""
        return check_signing_secret(value) if value else ""

    def clean_previous_secret_until(self) -> str:
        # Stored in the channel's JSON configuration: an ISO 8601 text.
        value: datetime | None = self.cleaned_data.get("previous_secret_until")
        return value.astimezone(UTC).isoformat() if value else ""


@register
class EventWebhookBackend(WebhookBackend):
    kind = "event_webhook"
    label = "Event webhook endpoint"
    is_broadcast = False
    is_internal = True
    config_form = EventWebhookConfigForm
    secret_fields = frozenset({"secret", "previous_secret"})

    def __init__(self, config: Any, secrets: Any) -> None:
        super().__init__(config, secrets)
        until = str(config.get("previous_secret_until") or "")
        previous = str(secrets.get("previous_secret") or "")
        self._previous: Webhook | None = None
        self._previous_until: datetime | None = None
        if previous and until:
            self._previous = Webhook(previous)
            self._previous_until = datetime.fromisoformat(until)

    def sign(self, webhook_id: str, timestamp: datetime, body: str) -> dict[str, str]:
        """The Standard Webhooks headers; the signature of the previous secret follows the
        current one while the rotation's overlap lasts."""
        headers = super().sign(webhook_id, timestamp, body)
        previous, until = self._previous, self._previous_until
        if previous is not None and until is not None and timestamp < until:
            old = previous.sign(webhook_id, timestamp, body)
            headers["webhook-signature"] = f"{headers['webhook-signature']} {old}"
        return headers

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [self._send_event(message) for message in batch]

    def _send_event(self, message: Message) -> Outcome:
        webhook_id = str(message.headers.get("webhook-id") or f"test_{message.delivery_id}")
        body = json.dumps(dict(message.payload), separators=(",", ":"), ensure_ascii=False)
        headers = {
            "Content-Type": "application/json",
            **self.sign(webhook_id, datetime.now(UTC), body),
        }
        started = time.perf_counter()
        try:
            response = self.session.post(
                self.url,
                data=body.encode(),
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except OutboundAddressError as exc:
            outcome = self.outcome(message, refused_outcome_status(exc), str(exc))
            return replace(outcome, response=ResponseInfo(None, _ms(started), ""))
        except requests.RequestException as exc:
            status = requests_failure(exc)
            outcome = self.outcome(message, status, network_error_text(status, exc, self.timeout))
            return replace(outcome, response=ResponseInfo(None, _ms(started), ""))
        info = ResponseInfo(response.status_code, _ms(started), _excerpt(response))
        return replace(self._classify_event(message, response), response=info)

    def _classify_event(self, message: Message, response: requests.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(message.delivery_id, OutcomeStatus.SENT)
        detail = http_status_text(status)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 410:
            return self.outcome(message, OutcomeStatus.PERMANENT, detail, disable_channel=True)
        if status == 429:
            return self.outcome(message, OutcomeStatus.RATE_LIMITED, detail, retry_after)
        # Any other answer is retried on the schedule: an endpoint answering 404 or 500 today
        # is usually being deployed, not gone.
        return self.outcome(message, OutcomeStatus.TRANSIENT, detail, retry_after)


def check_signing_secret(secret: str) -> str:
    """``secret`` stripped when it is a Standard Webhooks secret (``whsec_`` and base64 of 24
    to 64 bytes); raises forms.ValidationError saying what is wrong otherwise."""
    form = WebhookConfigForm()
    form.cleaned_data = {"secret": secret}
    return form.clean_secret()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _excerpt(response: requests.Response) -> str:
    try:
        text = response.content[: EXCERPT_LENGTH * 4].decode("utf-8", errors="replace")
    except requests.RequestException:
        return ""
    return text[:EXCERPT_LENGTH]
