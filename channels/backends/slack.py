"""Slack: a bot token posting to a channel (chat.postMessage, Block Kit) or an incoming webhook.

The message's ``payload`` is what publishing.rendering.render_slack builds: ``text`` (the
notification fallback) and ``blocks``. slack-sdk's own retry handlers are switched off: the
delivery engine owns retries, so a 429 comes back as RATE_LIMITED with Slack's Retry-After.

The webhook URL and the API base URL pass the outbound guard when saved and again right before
each call (config.outbound, decision 0071). slack-sdk opens its own urllib connection and takes
no opener, so its calls run inside ``connections_limited_to``: its sockets may connect only to
the addresses the check accepted, so a DNS change (or a redirect) between the check and the
connection is refused at the connect.
"""

from __future__ import annotations

import http.client
import logging
import re
import urllib.error
from collections.abc import Mapping, Sequence
from typing import Any, cast

from django import forms
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

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
    required_secret,
    validate_outbound_url,
)
from config.outbound import (
    CheckedTarget,
    OutboundAddressError,
    check_url,
    connections_limited_to,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = WebClient.BASE_URL
DEFAULT_TIMEOUT = 10.0
MODE_BOT = "bot"
MODE_WEBHOOK = "webhook"

#: Slack error codes that retrying will not fix.
PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
        "no_permission", "missing_scope", "channel_not_found", "not_in_channel", "is_archived",
        "channel_is_archived", "msg_too_long", "no_text", "invalid_blocks", "invalid_arguments",
        "invalid_payload", "restricted_action", "team_access_not_granted", "no_service",
        "action_prohibited", "invalid_token", "posting_to_general_channel_denied",
        "too_many_attachments", "ekm_access_denied",
    }
)  # fmt: skip
#: Permanent errors that name the channel's configuration, not the message (a revoked token,
#: a deleted webhook or channel): every later message would fail the same way, so the engine
#: disables the channel with this error as the reason (decision 0085).
CHANNEL_GONE_ERRORS = frozenset(
    {
        "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
        "invalid_token", "no_permission", "missing_scope", "channel_not_found", "not_in_channel",
        "is_archived", "channel_is_archived", "team_access_not_granted", "ekm_access_denied",
        "posting_to_general_channel_denied", "action_prohibited", "restricted_action",
        "no_service", "no_service_id", "no_team", "team_disabled",
    }
)  # fmt: skip
#: Slack error codes of a passing trouble on Slack's side.
TRANSIENT_ERRORS = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_NETWORK_ERRORS = (OSError, http.client.HTTPException, SlackClientError)
#: What a Slack webhook answers on failure (``no_text``, ``invalid_token``): the only body an
#: error may quote, as the URL may name any host.
_SLACK_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SlackConfigForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[(MODE_BOT, "Bot token and channel"), (MODE_WEBHOOK, "Incoming webhook")],
        initial=MODE_BOT,
    )
    channel = forms.CharField(
        required=False,
        max_length=100,
        help_text="Bot mode: the channel id (C0123456789) or name (#news).",
    )
    bot_token = forms.CharField(
        required=False, max_length=300, help_text="Bot mode: the bot user token, xoxb-…"
    )
    webhook_url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Webhook mode: https://hooks.slack.com/services/…",
        validators=[validate_outbound_url],
    )
    base_url = forms.URLField(
        label="API base URL",
        required=False,
        max_length=200,
        assume_scheme="https",
        help_text=f"Bot mode; leave empty for {DEFAULT_BASE_URL}",
        validators=[validate_outbound_url],
    )
    timeout = forms.FloatField(
        label="Timeout (seconds)", required=False, min_value=0.1, max_value=60
    )

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or {}
        mode = data.get("mode")
        if mode == MODE_BOT:
            token = (data.get("bot_token") or "").strip()
            if not token:
                self.add_error("bot_token", "A bot token is required in bot mode.")
            elif not token.startswith("xoxb-"):
                self.add_error("bot_token", "A bot token starts with xoxb-.")
            if not (data.get("channel") or "").strip():
                self.add_error("channel", "A channel is required in bot mode.")
            # Only the chosen mode's secret is kept.
            data["webhook_url"] = ""
        elif mode == MODE_WEBHOOK:
            # A URL the field refused already has its error.
            if not data.get("webhook_url") and "webhook_url" not in self.errors:
                self.add_error("webhook_url", "A webhook URL is required in webhook mode.")
            data["bot_token"] = ""
            data["channel"] = ""
        base_url = data.get("base_url") or ""
        if base_url and not base_url.endswith("/"):
            data["base_url"] = base_url + "/"
        return data


@register
class SlackBackend(Backend):
    kind = "slack"
    label = "Slack"
    is_broadcast = True
    config_form = SlackConfigForm
    secret_fields = frozenset({"bot_token", "webhook_url"})
    # A post shown twice is seen by the whole channel: better missed (and re-queued) than doubled.
    default_uncertain_policy = UncertainPolicy.SKIP

    def __init__(self, config: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        super().__init__(config, secrets)
        self.mode = str(config.get("mode") or MODE_BOT)
        self.timeout = float(config.get("timeout") or DEFAULT_TIMEOUT)
        secret = "webhook_url" if self.mode == MODE_WEBHOOK else "bot_token"
        self._secret = required_secret(secrets, secret, self.kind)
        self._client: WebClient | WebhookClient | None = None

    @property
    def client(self) -> WebClient | WebhookClient:
        if self._client is None:
            # slack-sdk annotates timeout as int; urllib takes (and we allow) fractions.
            if self.mode == MODE_WEBHOOK:
                self._client = WebhookClient(
                    url=self._secret,
                    timeout=cast(int, self.timeout),
                    retry_handlers=[],
                )
            else:
                self._client = WebClient(
                    token=self._secret,
                    base_url=str(self.config.get("base_url") or DEFAULT_BASE_URL),
                    timeout=cast(int, self.timeout),
                    retry_handlers=[],
                )
        return self._client

    def send(self, batch: Sequence[Message]) -> list[Outcome]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: Message) -> Outcome:
        payload = dict(message.payload)
        text = str(payload.get("text") or message.subject or message.text or " ")
        blocks = payload.get("blocks")
        client = self.client
        try:
            target, field = self._check_target()
            with connections_limited_to(target, field=field):
                if isinstance(client, WebhookClient):
                    return self._webhook_outcome(message, client.send(text=text, blocks=blocks))
                response = client.chat_postMessage(
                    channel=str(self.config["channel"]), text=text, blocks=blocks
                )
        except OutboundAddressError as exc:
            return self.outcome(message, refused_outcome_status(exc), str(exc))
        except SlackApiError as exc:
            return self._api_error_outcome(message, exc)
        except _NETWORK_ERRORS as exc:
            status = network_failure(exc)
            return self.outcome(message, status, network_error_text(status, exc, self.timeout))
        return Outcome(
            message.delivery_id, OutcomeStatus.SENT, provider_message_id=str(response["ts"])
        )

    def _api_error_outcome(self, message: Message, exc: SlackApiError) -> Outcome:
        response = exc.response
        data = response.data if isinstance(response.data, dict) else {}
        code = str(data.get("error") or "")
        status = classify(response.status_code, code)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return self.outcome(
            message,
            status,
            f"HTTP {response.status_code}: {code}",
            retry_after,
            disable_channel=status == OutcomeStatus.PERMANENT and code in CHANNEL_GONE_ERRORS,
        )

    def _webhook_outcome(self, message: Message, response: Any) -> Outcome:
        status_code: int = response.status_code
        body = str(response.body or "").strip()
        if status_code == 200 and body == "ok":
            return Outcome(message.delivery_id, OutcomeStatus.SENT)
        status = classify(status_code, body)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        detail = (
            f"HTTP {status_code}: {body}"
            if _SLACK_CODE.match(body)
            else http_status_text(status_code)
        )
        return self.outcome(
            message,
            status,
            detail,
            retry_after,
            disable_channel=status == OutcomeStatus.PERMANENT and body in CHANNEL_GONE_ERRORS,
        )

    def _check_target(self) -> tuple[CheckedTarget, str]:
        """The outbound guard, right before slack-sdk connects: the checked target and the
        field it came from. slack-sdk resolves the name again itself, so its calls run inside
        ``connections_limited_to`` that target (its sockets may reach the checked addresses
        only)."""
        if self.mode == MODE_WEBHOOK:
            return check_url(self._secret, field="webhook_url"), "webhook_url"
        url = str(self.config.get("base_url") or DEFAULT_BASE_URL)
        return check_url(url, field="base_url"), "base_url"

    def check(self) -> None:
        """Bot mode: auth.test. Webhook mode: an empty post, which Slack refuses without posting."""
        client = self.client
        try:
            target, field = self._check_target()
            with connections_limited_to(target, field=field):
                if isinstance(client, WebClient):
                    client.auth_test()
                    return
                response = client.send_dict({"text": ""})
        except OutboundAddressError as exc:
            raise BackendError(safe_error(str(exc), self.secrets.values())) from None
        except SlackApiError as exc:
            raise BackendError(
                safe_error(f"Slack refused the token: {exc.response.data}", self.secrets.values())
            ) from None
        except _NETWORK_ERRORS as exc:
            raise BackendError(
                safe_error(f"Slack unreachable: {exc}", self.secrets.values())
            ) from None
        # An empty payload is answered 400 no_text / invalid_payload by a live webhook.
        if response.status_code not in (200, 400):
            raise BackendError(
                safe_error(http_status_text(response.status_code), self.secrets.values())
            )


def network_failure(exc: BaseException) -> OutcomeStatus:
    """Whether the request slack-sdk failed with ``exc`` may have reached Slack.

    slack-sdk calls urllib's urlopen and lets its errors through. urllib wraps what fails while
    connecting and writing the request (DNS, refused, connect or write timeout, TLS) in a
    URLError: TRANSIENT. What fails while waiting for or reading the answer escapes raw
    (TimeoutError, http.client.RemoteDisconnected, IncompleteRead or another HTTPException,
    ConnectionResetError): UNCERTAIN. A SlackClientError here is a URL slack-sdk refused to open.
    """
    if isinstance(exc, urllib.error.URLError | SlackClientError):
        return OutcomeStatus.TRANSIENT
    return OutcomeStatus.UNCERTAIN


def classify(status_code: int, code: str) -> OutcomeStatus:
    """Map an HTTP status and a Slack error code to an outcome."""
    if status_code == 429 or code == "ratelimited":
        return OutcomeStatus.RATE_LIMITED
    if status_code >= 500 or code in TRANSIENT_ERRORS:
        return OutcomeStatus.TRANSIENT
    return OutcomeStatus.PERMANENT
