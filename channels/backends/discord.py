"""Discord: a webhook posting embeds (discord-webhook).

The message's ``payload`` is what publishing.rendering.render_discord builds (``embeds`` and,
optionally, ``content``). discord-webhook's own rate-limit loop is off (it would sleep inside
a worker): a 429 comes back as RATE_LIMITED with Discord's ``retry_after`` (float seconds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from discord_webhook import DiscordWebhook
from django import forms

from channels.backends.base import (
    Backend,
    BackendError,
    Message,
    Outcome,
    OutcomeStatus,
    UncertainPolicy,
    register,
)
from channels.backends.safe_text import safe_error
from channels.backends.utils import (
    network_error_text,
    parse_retry_after,
    requests_failure,
    required_secret,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0


class DiscordConfigForm(forms.Form):
    webhook_url = forms.URLField(
        label="Webhook URL",
        max_length=500,
        assume_scheme="https",
        help_text="https://discord.com/api/webhooks/<id>/<token>",
    )
    username = forms.CharField(
        required=False, max_length=80, help_text="Shown as the author; empty: the webhook's name."
    )
    timeout = forms.FloatField(
        label="Timeout (seconds)", required=False, min_value=0.1, max_value=60
    )


@register
class DiscordBackend(Backend):
    kind = "discord"
    label = "Discord"
    is_broadcast = True
    config_form = DiscordConfigForm
    secret_fields = frozenset({"webhook_url"})
    # A post shown twice is seen by the whole server: better missed (and re-queued) than doubled.
    default_uncertain_policy = UncertainPolicy.SKIP

    def __init__(self, config: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        super().__init__(config, secrets)
        self.url = required_secret(secrets, "webhook_url", self.kind)
        self.timeout = float(config.get("timeout") or DEFAULT_TIMEOUT)

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: Message) -> Outcome:
        payload = dict(message.payload)
        webhook = DiscordWebhook(
            url=self.url,
            content=payload.get("content"),
            embeds=list(payload.get("embeds") or []),
            username=self.config.get("username") or None,
            # A publication's text must never ping @everyone or a role.
            allowed_mentions={"parse": []},
            rate_limit_retry=False,
            timeout=self.timeout,
            wait=True,
        )
        try:
            # api_post_request, not execute: execute parses every answer as JSON (a 204 or a
            # proxy's HTML page would raise after Discord posted) and logs error bodies itself.
            response = webhook.api_post_request()
        except requests.RequestException as exc:
            # A timeout or a dropped connection once the request left is UNCERTAIN, not TRANSIENT.
            status = requests_failure(exc)
            return self.outcome(message, status, network_error_text(status, exc, self.timeout))
        return self._classify(message, response)

    def _classify(self, message: Message, response: requests.Response) -> Outcome:
        status = response.status_code
        body = _json(response)
        if 200 <= status < 300:
            return Outcome(
                message.delivery_id, OutcomeStatus.SENT, provider_message_id=str(body.get("id", ""))
            )
        detail = f"HTTP {status}: {body.get('message') or response.text[:200]}"
        if status == 429:
            retry_after = _float(body.get("retry_after"))
            if retry_after is None:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self.outcome(message, OutcomeStatus.RATE_LIMITED, detail, retry_after)
        if status >= 500:
            return self.outcome(message, OutcomeStatus.TRANSIENT, detail)
        return self.outcome(message, OutcomeStatus.PERMANENT, detail)

    def check(self) -> None:
        """GET on a webhook URL answers its description (200), or 401/404 when it is gone."""
        try:
            response = requests.get(self.url, timeout=self.timeout)
        except requests.RequestException as exc:
            raise BackendError(
                safe_error(f"Discord unreachable: {exc}", self.secrets.values())
            ) from None
        if response.status_code != 200:
            detail = _json(response).get("message") or response.text[:200]
            raise BackendError(
                safe_error(
                    f"webhook answered HTTP {response.status_code}: {detail}",
                    self.secrets.values(),
                )
            )


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = json.loads(response.content or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _float(value: object) -> float | None:
    try:
        return max(0.0, float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
