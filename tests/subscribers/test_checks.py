from __future__ import annotations

from django.test import override_settings

from subscribers.checks import check_subscriber_settings


def test_the_default_settings_pass() -> None:
    assert check_subscriber_settings() == []


@override_settings(SUBSCRIBERS_SIGNUP_RATE_IP="twenty", SUBSCRIBERS_IMPORT_WORKERS=0)
def test_it_names_a_malformed_rate_and_a_number_below_its_minimum() -> None:
    messages = [error.msg for error in check_subscriber_settings()]

    assert len(messages) == 2
    assert messages[0].startswith("SUBSCRIBERS_SIGNUP_RATE_IP='twenty' is not a rate")
    assert messages[1] == "SUBSCRIBERS_IMPORT_WORKERS must be at least 1."
