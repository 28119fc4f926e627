from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.test import override_settings
from django.utils import timezone

from subscribers import tokens


def test_it_reads_back_what_a_manage_token_carries() -> None:
    key = uuid.uuid4()

    claims = tokens.read_manage_token(tokens.manage_token(42, key))

    assert claims == tokens.TokenClaims(subscriber_id=42, token_key=str(key))


@pytest.mark.parametrize("subscriber_id", [1, 42, 2**40])
def test_the_batch_signer_gives_exactly_the_tokens_manage_token_gives(subscriber_id: int) -> None:
    keys: list[uuid.UUID | str] = [uuid.uuid4(), str(uuid.uuid4()), "0" * 36]

    with time_machine.travel(timezone.now(), tick=False):
        sign = tokens.ManageTokenSigner()
        signed = [sign(subscriber_id, key) for key in keys]
        expected = [tokens.manage_token(subscriber_id, key) for key in keys]

    assert signed == expected
    assert [tokens.read_manage_token(token).token_key for token in signed] == [str(k) for k in keys]


def test_links_sent_with_compressed_tokens_still_work() -> None:
    """Tokens were signed with ``compress=True`` until decision 0066's update: the links
    already in mailboxes (a key of zeros compresses) keep working, of every kind."""
    key = "0" * 36
    for salt, read in (
        (tokens.MANAGE_SALT, tokens.read_manage_token),
        (tokens.UNSUBSCRIBE_SALT, tokens.read_unsubscribe_token),
        (tokens.CONFIRM_SALT, tokens.read_confirmation_token),
    ):
        old = signing.dumps([5, key], salt=salt, compress=True)
        assert old.startswith(".")
        assert read(old) == tokens.TokenClaims(subscriber_id=5, token_key=key)
    old = signing.dumps([5, key, 9], salt=tokens.FEEDBACK_SALT, compress=True)
    assert tokens.read_feedback_token(old) == tokens.FeedbackClaims(5, key, 9)
    # New tokens are not compressed, so a token in a link has one form.
    assert not tokens.manage_token(5, key).startswith(".")


def test_the_batch_signer_signs_with_the_current_secret_key() -> None:
    with override_settings(SECRET_KEY="rotated-" + "z" * 50):
        token = tokens.ManageTokenSigner()(9, uuid.uuid4())
        assert tokens.read_manage_token(token).subscriber_id == 9
    with pytest.raises(tokens.TokenError):
        tokens.read_manage_token(token)


def test_it_never_expires_a_manage_token() -> None:
    token = tokens.manage_token(42, uuid.uuid4())

    with time_machine.travel(timezone.now() + timedelta(days=3650)):
        assert tokens.read_manage_token(token).subscriber_id == 42


def test_it_expires_a_confirmation_token_after_the_configured_days() -> None:
    token = tokens.confirmation_token(7, uuid.uuid4())

    with time_machine.travel(timezone.now() + timedelta(days=6, hours=23)):
        assert tokens.read_confirmation_token(token).subscriber_id == 7
    later = timezone.now() + timedelta(days=7, seconds=1)
    with time_machine.travel(later), pytest.raises(tokens.TokenError) as error:
        tokens.read_confirmation_token(token)
    assert error.value.reason == "expired"


@pytest.mark.parametrize("token", ["", "garbage", "a:b:c", "W1sxLCJ4Il0:abc:def"])
def test_it_refuses_forged_tokens(token: str) -> None:
    with pytest.raises(tokens.TokenError) as error:
        tokens.read_manage_token(token)
    assert error.value.reason == "invalid"


def test_it_does_not_accept_one_kind_of_token_as_the_other() -> None:
    key = uuid.uuid4()

    with pytest.raises(tokens.TokenError):
        tokens.read_manage_token(tokens.confirmation_token(1, key))
    with pytest.raises(tokens.TokenError):
        tokens.read_confirmation_token(tokens.manage_token(1, key))


def test_an_unsubscribe_token_is_neither_a_manage_token_nor_a_confirmation_token() -> None:
    key = uuid.uuid4()
    unsubscribe = tokens.unsubscribe_token(1, key)

    assert tokens.read_unsubscribe_token(unsubscribe) == tokens.TokenClaims(1, str(key))
    with pytest.raises(tokens.TokenError):
        tokens.read_manage_token(unsubscribe)
    with pytest.raises(tokens.TokenError):
        tokens.read_confirmation_token(unsubscribe)
    with pytest.raises(tokens.TokenError):
        tokens.read_unsubscribe_token(tokens.manage_token(1, key))


def test_the_batch_signer_with_the_unsubscribe_salt_gives_unsubscribe_tokens() -> None:
    key = uuid.uuid4()

    with time_machine.travel(timezone.now(), tick=False):
        signed = tokens.ManageTokenSigner(salt=tokens.UNSUBSCRIBE_SALT)(8, key)
        expected = tokens.unsubscribe_token(8, key)

    assert signed == expected


def test_it_still_reads_tokens_signed_with_a_previous_secret_key() -> None:
    with override_settings(SECRET_KEY="old-key-" + "x" * 50):
        token = tokens.manage_token(5, uuid.uuid4())

    with override_settings(
        SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=["old-key-" + "x" * 50]
    ):
        assert tokens.read_manage_token(token).subscriber_id == 5
    new_only = override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=[])
    with new_only, pytest.raises(tokens.TokenError):
        tokens.read_manage_token(token)


@override_settings(SITE_URL="https://news.example.org", UNSUBSCRIBE_MAILTO="unsub@example.org")
def test_it_builds_rfc_8058_headers_with_https_and_mailto_targets() -> None:
    token = tokens.manage_token(3, uuid.uuid4())

    headers = tokens.list_unsubscribe_headers(token)

    assert headers["List-Unsubscribe"] == (
        f"<https://news.example.org/unsubscribe/{token}/>, "
        "<mailto:unsub@example.org?subject=unsubscribe>"
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert tokens.preferences_url(token) == f"https://news.example.org/preferences/{token}/"


@override_settings(UNSUBSCRIBE_MAILTO="")
def test_it_leaves_out_mailto_when_no_inbound_address_is_configured() -> None:
    token = tokens.manage_token(3, uuid.uuid4())

    assert "mailto" not in tokens.list_unsubscribe_headers(token)["List-Unsubscribe"]
