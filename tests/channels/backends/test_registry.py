from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
import time_machine
from django import forms

import channels.backends
from channels.backends import (
    Backend,
    BackendError,
    Message,
    Outcome,
    OutcomeStatus,
    get_backend_class,
    register,
    registry,
)
from channels.backends.safe_text import safe_error
from channels.backends.utils import parse_retry_after


def test_importing_the_package_registers_every_shipped_backend() -> None:
    assert {"email_ses", "slack", "discord", "webhook"} <= set(channels.backends.registry)
    for kind, backend_class in registry.items():
        assert backend_class.kind == kind
        assert issubclass(backend_class.config_form, forms.Form)
        assert backend_class.secret_fields <= set(backend_class.config_form.base_fields)
    assert {k for k, c in registry.items() if c.is_broadcast} >= {"slack", "discord", "webhook"}
    assert registry["email_ses"].is_broadcast is False


def test_a_new_kind_is_one_registered_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channels.backends.base, "registry", dict(registry))

    class EchoForm(forms.Form):
        tag = forms.CharField()

    @register
    class EchoBackend(Backend):
        kind = "echo"
        label = "Echo"
        config_form = EchoForm

        def send(self, batch: Sequence[Message]) -> list[Outcome]:
            return [
                Outcome(m.delivery_id, OutcomeStatus.SENT, f"{self.config['tag']}-{m.delivery_id}")
                for m in batch
            ]

    backend = get_backend_class("echo")({"tag": "e"}, {})
    assert backend.send([Message(delivery_id=4)])[0].provider_message_id == "e-4"


def test_an_unknown_kind_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="Unknown channel kind 'pigeon'"):
        get_backend_class("pigeon")


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("-3") == 0.0
    with time_machine.travel(datetime(2026, 11, 28, 14, 0, tzinfo=UTC), tick=False):
        assert parse_retry_after("Sat, 28 Nov 2026 14:01:30 GMT") == 90.0


def test_safe_error_removes_the_channels_own_secrets_and_known_shapes() -> None:
    url = "https://hooks.example.net/services/T1/B2/abcdefSECRET"
    text = (
        f"POST {url} failed; token xoxb-123-456-abc; user jane.doe@example.org; "
        "path /services/T1/B2/abcdefSECRET"
    )

    cleaned = safe_error(text, [url])

    assert "abcdefSECRET" not in cleaned
    assert "xoxb-123" not in cleaned
    assert "jane.doe@example.org" not in cleaned
    assert len(safe_error("x" * 5000)) <= 500


@pytest.mark.parametrize(
    ("kind", "config", "secrets", "error"),
    [
        ("discord", {}, {}, "has no webhook_url"),
        ("slack", {"mode": "bot", "channel": "C1"}, {}, "has no bot_token"),
        ("slack", {"mode": "webhook"}, {}, "has no webhook_url"),
        ("webhook", {"url": "https://example.com/"}, {}, "has no secret"),
        ("webhook", {"url": "https://example.com/"}, {"secret": "whsec_!!!"}, "not valid base64"),
    ],
)
def test_a_backend_missing_its_secret_refuses_to_start_with_a_backend_error(
    kind: str, config: dict[str, str], secrets: dict[str, str], error: str
) -> None:
    with pytest.raises(BackendError, match=error):
        get_backend_class(kind)(config, secrets)
