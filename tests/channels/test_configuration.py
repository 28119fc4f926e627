from __future__ import annotations

import base64
import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import override_settings
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from channels.backends import BackendError, OutcomeStatus
from channels.backends.slack import SlackBackend
from channels.configuration import (
    MASK,
    ChannelConfigurationError,
    build_backend,
    channel_secrets,
    check_channel,
    check_channel_config,
    mask_secret,
    masked_secrets,
    rotate_channel_secrets,
    save_channel,
    send_test_message,
)
from channels.crypto import InvalidToken, decrypt_secrets, encrypt_secrets, rotate_secrets
from channels.models import Channel
from tests.channels.logs import production_logs

pytestmark = pytest.mark.django_db

TOKEN = "xoxb-1111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def new_channel(kind: str, name: str = "news") -> Channel:
    return Channel(name=name, kind=kind)


def stored_column(channel: Channel) -> str:
    """The secrets column exactly as the database holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets_encrypted FROM channels_channel WHERE id = %s", [channel.pk])
        value: str = cursor.fetchone()[0]
    return value


# --- Validation --------------------------------------------------------------------------------


def test_an_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ChannelConfigurationError) as raised:
        save_channel(new_channel("pigeon"), {"url": "https://example.com/"})

    assert list(raised.value.errors) == ["kind"]
    assert "pigeon" in raised.value.errors["kind"][0]
    assert "webhook" in raised.value.errors["kind"][0]
    assert not Channel.objects.exists()


def test_a_missing_required_field_is_reported_on_that_field() -> None:
    with pytest.raises(ChannelConfigurationError) as raised:
        save_channel(new_channel("webhook"), {"secret": WHSEC})

    assert raised.value.errors == {"url": ["This field is required."]}
    assert "url: This field is required." in str(raised.value)
    assert not Channel.objects.exists()


def test_a_bad_url_is_reported_on_that_field() -> None:
    with pytest.raises(ChannelConfigurationError) as raised:
        save_channel(new_channel("discord"), {"webhook_url": "http://exa mple/ not a url"})

    assert raised.value.errors == {"webhook_url": ["Enter a valid URL."]}


def test_cross_field_rules_of_a_schema_name_their_field() -> None:
    with pytest.raises(ChannelConfigurationError) as raised:
        check_channel_config("slack", {"mode": "bot", "bot_token": "not-a-token"})

    assert raised.value.errors == {
        "bot_token": ["A bot token starts with xoxb-."],
        "channel": ["A channel is required in bot mode."],
    }


def test_a_bad_signing_secret_says_what_a_good_one_looks_like() -> None:
    with pytest.raises(ChannelConfigurationError) as raised:
        check_channel_config("webhook", {"url": "https://example.com/", "secret": "hunter2"})

    assert raised.value.errors == {"secret": ["The signing secret must start with whsec_."]}


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(ChannelConfigurationError) as raised:
        check_channel_config(
            "discord", {"webhook_url": "https://discord.com/api/webhooks/1/x", "colour": "red"}
        )

    assert raised.value.errors == {"colour": ["Unknown setting for a discord channel."]}


def test_batch_size_and_rate_limit_are_checked_with_their_limits() -> None:
    channel = Channel(name="n", kind="webhook", batch_size=0, rate_limit_per_second=-1)

    with pytest.raises(ChannelConfigurationError) as raised:
        save_channel(channel, {"url": "https://example.com/", "secret": WHSEC})

    assert raised.value.errors["batch_size"] == ["The batch size must be between 1 and 10000."]
    assert raised.value.errors["rate_limit_per_second"] == [
        "The rate limit must be more than 0 (or empty)."
    ]


# --- Storage -----------------------------------------------------------------------------------


def test_it_stores_settings_in_clear_and_secrets_encrypted() -> None:
    channel = save_channel(
        new_channel("slack"), {"mode": "bot", "channel": "C0123456789", "bot_token": TOKEN}
    )

    channel.refresh_from_db()
    assert channel.config["channel"] == "C0123456789"
    assert channel.config["mode"] == "bot"
    assert "bot_token" not in channel.config
    column = stored_column(channel)
    assert column
    assert TOKEN not in column
    assert "xoxb" not in column
    assert channel_secrets(channel) == {"bot_token": TOKEN}


def test_an_empty_secret_keeps_the_stored_one() -> None:
    channel = save_channel(
        new_channel("slack"), {"mode": "bot", "channel": "C0123456789", "bot_token": TOKEN}
    )

    save_channel(channel, {"mode": "bot", "channel": "C999", "bot_token": ""})

    channel.refresh_from_db()
    assert channel.config["channel"] == "C999"
    assert channel_secrets(channel) == {"bot_token": TOKEN}


def test_switching_mode_drops_the_other_modes_secret() -> None:
    channel = save_channel(
        new_channel("slack"), {"mode": "bot", "channel": "C0123456789", "bot_token": TOKEN}
    )

    save_channel(
        channel, {"mode": "webhook", "webhook_url": "https://hooks.slack.com/services/T/B/x"}
    )

    channel.refresh_from_db()
    assert channel_secrets(channel) == {"webhook_url": "https://hooks.slack.com/services/T/B/x"}


def test_an_invalid_update_loses_nothing_already_stored() -> None:
    channel = save_channel(
        new_channel("webhook"), {"url": "https://example.com/in", "secret": WHSEC}
    )
    before = (channel.config, stored_column(channel))

    with pytest.raises(ChannelConfigurationError):
        save_channel(channel, {"url": "not a url", "secret": ""})

    channel.refresh_from_db()
    assert (channel.config, stored_column(channel)) == before


def test_secrets_are_shown_masked() -> None:
    assert mask_secret(TOKEN) == f"xoxb-{MASK}UvWx"
    assert mask_secret(WHSEC) == f"whsec_{MASK}{WHSEC[-4:]}"
    assert mask_secret("https://hooks.slack.com/services/T00/B00/abcdefgh1234") == (
        f"https://hooks.slack.com/{MASK}1234"
    )
    assert mask_secret("short") == MASK
    assert mask_secret("") == ""
    channel = save_channel(
        new_channel("slack"), {"mode": "bot", "channel": "C0123456789", "bot_token": TOKEN}
    )
    assert masked_secrets(channel) == {"bot_token": f"xoxb-{MASK}UvWx"}


def test_build_backend_gives_the_configured_backend() -> None:
    channel = save_channel(
        new_channel("slack"), {"mode": "bot", "channel": "C0123456789", "bot_token": TOKEN}
    )

    backend = build_backend(Channel.objects.get(pk=channel.pk))

    assert isinstance(backend, SlackBackend)
    assert backend.secrets == {"bot_token": TOKEN}
    assert backend.config["channel"] == "C0123456789"


def test_saving_a_channel_logs_no_secret() -> None:
    with production_logs() as logs:
        save_channel(new_channel("webhook"), {"url": "https://example.com/in", "secret": WHSEC})
        with pytest.raises(ChannelConfigurationError):
            save_channel(new_channel("webhook", "x"), {"url": "nope", "secret": WHSEC})

    assert "configured" in logs.getvalue()
    assert WHSEC not in logs.getvalue()
    assert WHSEC.removeprefix("whsec_") not in logs.getvalue()


# --- Encryption and rotation -------------------------------------------------------------------


def test_a_value_encrypted_with_an_old_key_still_decrypts_and_rotates_to_the_new_one() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        channel = save_channel(
            new_channel("webhook"), {"url": "https://example.com/in", "secret": WHSEC}
        )
        encrypted_with_old = stored_column(channel)

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        assert channel_secrets(Channel.objects.get(pk=channel.pk)) == {"secret": WHSEC}
        assert rotate_channel_secrets() == 1
        rotated = stored_column(channel)

    assert rotated != encrypted_with_old
    assert WHSEC not in rotated
    # The old key is no longer needed, and no longer enough.
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):
        assert channel_secrets(Channel.objects.get(pk=channel.pk)) == {"secret": WHSEC}
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        with pytest.raises(InvalidToken):
            decrypt_secrets(rotated)
        with pytest.raises(BackendError, match="cannot be decrypted"):
            build_backend(Channel.objects.get(pk=channel.pk))


def test_rotation_stops_without_changes_when_a_channel_cannot_be_decrypted() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        first = save_channel(
            new_channel("webhook", "a"), {"url": "https://a.example/", "secret": WHSEC}
        )
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):
        save_channel(new_channel("webhook", "b"), {"url": "https://b.example/", "secret": WHSEC})
        before = stored_column(first)
        with pytest.raises(BackendError, match=f"channel {first.pk}"):
            rotate_channel_secrets()
    assert stored_column(first) == before


def test_crypto_round_trips_and_rotates_a_single_value() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        token = encrypt_secrets({"a": "1"})
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        rotated = rotate_secrets(token)
    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):
        assert decrypt_secrets(rotated) == {"a": "1"}
    assert encrypt_secrets({}) == "" and decrypt_secrets("") == {} and rotate_secrets("") == ""


def test_a_malformed_key_names_the_setting() -> None:
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, "not-a-key"]),
        pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS: key number 2"),
    ):
        encrypt_secrets({"a": "1"})


def test_production_refuses_to_run_without_keys() -> None:
    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[], DEBUG=False, TESTING=False),
        pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is not set"),
    ):
        encrypt_secrets({"a": "1"})


# --- Test messages and checks ------------------------------------------------------------------


def test_a_test_message_goes_through_the_backend_signed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/in", method="POST").respond_with_data("", status=204)
    channel = save_channel(
        new_channel("webhook"), {"url": httpserver.url_for("/in"), "secret": WHSEC}
    )

    outcome = send_test_message(channel)

    assert outcome.status == OutcomeStatus.SENT
    [(request, _)] = httpserver.log
    body = Webhook(WHSEC).verify(request.get_data(), dict(request.headers))
    assert body["type"] == "publication.published"
    assert "news" in body["data"]["summary"]
    assert request.headers["webhook-id"].startswith("test_")


def test_a_test_message_reports_the_failure_as_an_outcome(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/in").respond_with_data("gone", status=410)
    channel = save_channel(
        new_channel("webhook"), {"url": httpserver.url_for("/in"), "secret": WHSEC}
    )

    outcome = send_test_message(channel)

    assert outcome.status == OutcomeStatus.PERMANENT
    channel.refresh_from_db()
    assert channel.is_enabled is True
    assert channel.last_error == ""


def test_an_email_test_message_needs_an_address() -> None:
    channel = save_channel(
        new_channel("email_ses"), {"from_email": "news@example.com", "region": "eu-west-1"}
    )

    with pytest.raises(ChannelConfigurationError) as raised:
        send_test_message(channel)

    assert list(raised.value.errors) == ["to"]


def test_check_channel_refuses_a_configuration_edited_into_nonsense(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/in", method="HEAD").respond_with_data("")
    channel = save_channel(
        new_channel("webhook"), {"url": httpserver.url_for("/in"), "secret": WHSEC}
    )
    check_channel(channel)

    Channel.objects.filter(pk=channel.pk).update(config={"url": "nonsense", "timeout": 5})
    with pytest.raises(ChannelConfigurationError, match="url"):
        check_channel(Channel.objects.get(pk=channel.pk))


def test_the_debug_log_of_a_failed_send_holds_no_secret(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpserver.expect_request("/api/chat.postMessage").respond_with_json(
        {"ok": False, "error": "invalid_auth"}
    )
    channel = save_channel(
        new_channel("slack"),
        {
            "mode": "bot",
            "channel": "C1",
            "bot_token": TOKEN,
            "base_url": httpserver.url_for("/api/"),
        },
    )
    caplog.set_level(logging.DEBUG)

    with production_logs() as logs:
        outcome = send_test_message(channel)

    assert outcome.status == OutcomeStatus.PERMANENT
    assert "invalid_auth" in logs.getvalue()
    assert TOKEN not in logs.getvalue()


def test_a_kind_rendering_does_not_know_gets_a_plain_test_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from collections.abc import Sequence

    from django import forms

    from channels.backends import Backend, Message, Outcome, base

    received: list[Message] = []

    class PagerForm(forms.Form):
        number = forms.CharField()

    class PagerBackend(Backend):
        kind = "pager"
        label = "Pager"
        is_broadcast = True
        config_form = PagerForm

        def send(self, batch: Sequence[Message]) -> list[Outcome]:
            received.extend(batch)
            return [Outcome(m.delivery_id, OutcomeStatus.SENT) for m in batch]

    monkeypatch.setitem(base.registry, "pager", PagerBackend)
    channel = save_channel(new_channel("pager"), {"number": "555"})

    outcome = send_test_message(channel)

    assert outcome.status == OutcomeStatus.SENT
    [message] = received
    assert message.delivery_id == 0
    assert message.payload["text"] == "Test message from Publishing"
