from __future__ import annotations

import base64
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.test import override_settings
from pytest_httpserver import HTTPServer

from channels.configuration import channel_secrets, save_channel
from channels.models import Channel

pytestmark = pytest.mark.django_db

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DISCORD_PATH = "/api/webhooks/1200000000000000777/Tk3n-SeCrEt_part_0123456789abcdef"


def webhook_channel(name: str, url: str, *, is_enabled: bool = True) -> Channel:
    return save_channel(
        Channel(name=name, kind="webhook", is_enabled=is_enabled), {"url": url, "secret": WHSEC}
    )


def test_it_reports_each_enabled_channel_and_passes_when_all_are_reachable(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/in", method="HEAD").respond_with_data("")
    webhook_channel("alpha", httpserver.url_for("/in"))
    webhook_channel("dormant", "http://127.0.0.1:9/", is_enabled=False)
    out = StringIO()

    call_command("check_channels", stdout=out)

    assert "OK   alpha (webhook)" in out.getvalue()
    assert "dormant" not in out.getvalue()


def test_it_fails_naming_the_unreachable_channel_without_its_secret(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/in", method="HEAD").respond_with_data("")
    webhook_channel("alpha", httpserver.url_for("/in"))
    save_channel(
        Channel(name="discord", kind="discord"),
        {"webhook_url": "http://127.0.0.1:9" + DISCORD_PATH, "timeout": 1},
    )
    out = StringIO()

    with pytest.raises(CommandError, match="1 channel"):
        call_command("check_channels", stdout=out)

    assert "OK   alpha" in out.getvalue()
    assert "FAIL discord (discord): Discord unreachable" in out.getvalue()
    assert "Tk3n-SeCrEt" not in out.getvalue()


def test_it_refuses_a_stored_configuration_that_no_longer_validates() -> None:
    channel = webhook_channel("alpha", "https://example.com/in")
    Channel.objects.filter(pk=channel.pk).update(config={"url": "not a url"})
    out = StringIO()

    with pytest.raises(CommandError):
        call_command("check_channels", "alpha", stdout=out)

    assert "FAIL alpha (webhook): url: Enter a valid URL." in out.getvalue()


def test_it_checks_disabled_channels_with_all_and_names_unknown_ones(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/in", method="HEAD").respond_with_data("")
    webhook_channel("dormant", httpserver.url_for("/in"), is_enabled=False)
    out = StringIO()

    call_command("check_channels", "--all", stdout=out)
    assert "OK   dormant" in out.getvalue()

    with pytest.raises(CommandError, match="No channel named ghost"):
        call_command("check_channels", "ghost", stdout=out)


def test_rotate_channel_secrets_re_encrypts_with_the_new_key() -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old]):
        channel = webhook_channel("alpha", "https://example.com/in")
    out = StringIO()

    with override_settings(FIELD_ENCRYPTION_KEYS=[new, old]):
        call_command("rotate_channel_secrets", stdout=out)

    assert "Re-encrypted the secrets of 1 channel(s)." in out.getvalue()
    with override_settings(FIELD_ENCRYPTION_KEYS=[new]):
        assert channel_secrets(Channel.objects.get(pk=channel.pk)) == {"secret": WHSEC}


def test_rotate_channel_secrets_fails_cleanly_with_the_wrong_keys() -> None:
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        webhook_channel("alpha", "https://example.com/in")

    with (
        override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]),
        pytest.raises(CommandError, match="cannot be decrypted"),
    ):
        call_command("rotate_channel_secrets")
