"""Signed HTTP webhooks (Standard Webhooks): one JSON POST per publication per endpoint.

Each request carries ``webhook-id`` (the delivery id, so a receiver can drop a repeat),
``webhook-timestamp`` and ``webhook-signature`` (``v1,<base64 HMAC-SHA256>`` of
``id.timestamp.body`` with the endpoint's ``whsec_`` secret), as https://www.standardwebhooks.com
specifies. Only a 2xx answer counts as delivered; 410 Gone disables the endpoint.

The endpoint may be any host, so its URL passes the outbound guard when saved and again when
each request leaves, connecting to the address checked (config.outbound, decision 0071); an
error never carries the endpoint's answer, only its status.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import requests
from django import forms
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError

from channels.backends.base import Backend, BackendError, Message, Outcome, OutcomeStatus, register
from channels.backends.safe_text import safe_error
from channels.backends.utils import (
    http_status_text,
    network_error_text,
    parse_retry_after,
    refused_outcome_status,
    requests_failure,
    required_secret,
    validate_outbound_url,
)
from config.outbound import OutboundAddressError, pinned_session

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
USER_AGENT = "publishing-webhooks/1.0"
DEFAULT_TIMEOUT = 10.0


class WebhookConfigForm(forms.Form):
    url = forms.URLField(
        label="Endpoint URL",
        max_length=500,
        assume_scheme="https",
        help_text="Where each publication is POSTed as JSON (a public address).",
        validators=[validate_outbound_url],
    )
    secret = forms.CharField(
        label="Signing secret",
        max_length=200,
        help_text="A Standard Webhooks secret: whsec_ followed by base64 (24 to 64 bytes).",
    )
    timeout = forms.FloatField(
        label="Timeout (seconds)",
        required=False,
        min_value=0.1,
        max_value=60,
        initial=DEFAULT_TIMEOUT,
        help_text="How long to wait for the endpoint's answer.",
    )

    def clean_secret(self) -> str:
        secret: str = self.cleaned_data["secret"].strip()
        if not secret.startswith(SECRET_PREFIX):
            raise forms.ValidationError("The signing secret must start with whsec_.")
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise forms.ValidationError(
                "The part after whsec_ must be base64 (letters, digits, +, / and =)."
            ) from None
        if not 24 <= len(key) <= 64:
            raise forms.ValidationError("The signing secret must decode to 24 to 64 bytes.")
        return secret

    def clean_timeout(self) -> float:
        timeout: float | None = self.cleaned_data.get("timeout")
        return DEFAULT_TIMEOUT if timeout is None else timeout


@register
class WebhookBackend(Backend):
    kind = "webhook"
    label = "Webhook (Standard Webhooks)"
    is_broadcast = True
    config_form = WebhookConfigForm
    secret_fields = frozenset({"secret"})

    def __init__(self, config: Any, secrets: Any) -> None:
        super().__init__(config, secrets)
        self.url: str = str(config["url"])
        self.timeout = float(config.get("timeout") or DEFAULT_TIMEOUT)
        try:
            self._signer = Webhook(required_secret(secrets, "secret", self.kind))
        except (binascii.Error, ValueError, EmptyWebhookSecretError):
            raise BackendError("The webhook signing secret is not valid base64.") from None
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        # One connection pool per batch (and per worker, while the backend is cached).
        if self._session is None:
            # Checks the URL again as each request leaves and connects to the checked address.
            self._session = pinned_session()
            self._session.headers["User-Agent"] = USER_AGENT
        return self._session

    def sign(self, webhook_id: str, timestamp: datetime, body: str) -> dict[str, str]:
        """The three Standard Webhooks headers for ``body``."""
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": self._signer.sign(webhook_id, timestamp, body),
        }

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: Message) -> Outcome:
        # delivery_id 0 is a test message with no ledger row: give it an id of its own.
        webhook_id = str(message.delivery_id) if message.delivery_id else f"test_{uuid.uuid4().hex}"
        body = json.dumps(dict(message.payload), separators=(",", ":"), ensure_ascii=False)
        headers = {"Content-Type": "application/json", **self.sign(webhook_id, _now(), body)}
        try:
            response = self.session.post(
                self.url,
                data=body.encode(),
                headers=headers,
                timeout=self.timeout,
                # A redirected POST would turn into a GET elsewhere: an endpoint must answer.
                allow_redirects=False,
            )
        except OutboundAddressError as exc:
            # Refused before anything was sent (the host now resolves somewhere private).
            return self.outcome(message, refused_outcome_status(exc), str(exc))
        except requests.RequestException as exc:
            # A timeout or a dropped connection once the request left is UNCERTAIN, not TRANSIENT.
            status = requests_failure(exc)
            return self.outcome(message, status, network_error_text(status, exc, self.timeout))
        return self._classify(message, response)

    def _classify(self, message: Message, response: requests.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(message.delivery_id, OutcomeStatus.SENT, provider_message_id="")
        detail = http_status_text(status)
        if status == 410:
            return self.outcome(message, OutcomeStatus.PERMANENT, detail, disable_channel=True)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self.outcome(message, OutcomeStatus.RATE_LIMITED, detail, retry_after)
        if status >= 500 or status == 408:
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self.outcome(message, OutcomeStatus.TRANSIENT, detail, retry_after)
        return self.outcome(message, OutcomeStatus.PERMANENT, detail)

    def check(self) -> None:
        """Reachable means the endpoint's server answers at all (any HTTP status)."""
        try:
            self.session.head(self.url, timeout=self.timeout, allow_redirects=False)
        except OutboundAddressError as exc:
            raise BackendError(str(exc)) from None
        except requests.RequestException as exc:
            raise BackendError(
                safe_error(f"endpoint unreachable: {exc}", self.secrets.values())
            ) from None

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _now() -> datetime:
    return datetime.now(UTC)
