"""Discord: a webhook posting embeds (discord-webhook).

The message's ``payload`` is what publishing.rendering.render_discord builds (``embeds`` and,
optionally, ``content``). discord-webhook's own rate-limit loop is off (it would sleep inside
a worker): a 429 comes back as RATE_LIMITED with Discord's ``retry_after`` (float seconds).

discord-webhook builds the JSON; the request itself goes through a session of the outbound
guard (config.outbound, decision 0071), which checks the URL as it leaves and connects to the
address checked: discord-webhook posts with ``requests.post`` and takes no session. An error
carries the answer's status and Discord's own short error message, never any other body.
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

DEFAULT_TIMEOUT = 10.0


class DiscordConfigForm(forms.Form):
    webhook_url = forms.URLField(
        label="Webhook URL",
        max_length=500,
        assume_scheme="https",
        help_text="https://discord.com/api/webhooks/<id>/<token>",
        validators=[validate_outbound_url],
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
        self._session: requests.Session | None = None

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = pinned_session(field="webhook_url")
        return self._session

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
            # Not execute: it parses every answer as JSON (a 204 or a proxy's HTML page would
            # raise after Discord posted) and logs error bodies itself. The same request as
            # api_post_request, through the guard's session.
            response = self.session.post(
                self.url, json=webhook.json, params={"wait": True}, timeout=self.timeout
            )
        except OutboundAddressError as exc:
            return self.outcome(message, refused_outcome_status(exc), str(exc))
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
        detail = _discord_error(status, body)
        if status == 429:
            retry_after = _float(body.get("retry_after"))
            if retry_after is None:
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return self.outcome(message, OutcomeStatus.RATE_LIMITED, detail, retry_after)
        if status >= 500:
            return self.outcome(message, OutcomeStatus.TRANSIENT, detail)
        # 401 (invalid webhook token, code 50027) and 404 (unknown webhook, code 10015): the
        # webhook was deleted or its URL is wrong; every later post would fail the same way,
        # so the engine disables the channel with this error as the reason (decision 0085).
        return self.outcome(
            message, OutcomeStatus.PERMANENT, detail, disable_channel=status in GONE_STATUSES
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def check(self) -> None:
        """GET on a webhook URL answers its description (200), or 401/404 when it is gone."""
        try:
            response = self.session.get(self.url, timeout=self.timeout)
        except OutboundAddressError as exc:
            raise BackendError(safe_error(str(exc), self.secrets.values())) from None
        except requests.RequestException as exc:
            raise BackendError(
                safe_error(f"Discord unreachable: {exc}", self.secrets.values())
            ) from None
        if response.status_code != 200:
            raise BackendError(
                safe_error(
                    f"webhook answered {_discord_error(response.status_code, _json(response))}",
                    self.secrets.values(),
                )
            )


#: Answers that mean the webhook itself is gone (Unknown Webhook, Invalid Webhook Token).
GONE_STATUSES = frozenset({401, 404})


def _discord_error(status: int, body: Mapping[str, Any]) -> str:
    """An error's text: Discord's own error (JSON with a numeric ``code`` and a short
    ``message``, such as "Unknown Webhook"), else the status and a fixed text. Any other body
    is never quoted: the URL may name any host (decision 0071)."""
    text = body.get("message")
    if isinstance(body.get("code"), int) and isinstance(text, str) and 0 < len(text) <= 100:
        return f"HTTP {status}: {text}"
    return http_status_text(status)


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
