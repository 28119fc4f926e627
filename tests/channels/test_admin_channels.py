from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_httpserver import HTTPServer

from channels.configuration import MASK, channel_secrets, save_channel
from channels.models import Channel, Delivery
from tests.factories import DeliveryFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "xoxb-1111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"
WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
ADD_URL = reverse("admin:channels_channel_add")
LIST_URL = reverse("admin:channels_channel_changelist")


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    root: User = UserFactory.create(username="root", is_superuser=True, email="root@example.com")
    client.force_login(root)
    return client


def slack_form(**overrides: Any) -> dict[str, Any]:
    data = {
        "name": "Team news",
        "is_enabled": "on",
        "batch_size": "50",
        "rate_limit_per_second": "1",
        "config_mode": "bot",
        "config_channel": "C0123456789",
        "config_bot_token": TOKEN,
        "config_webhook_url": "",
        "config_base_url": "",
        "config_timeout": "",
    }
    data.update(overrides)
    return data


def slack_channel(name: str = "Team news") -> Channel:
    return save_channel(
        Channel(name=name, kind="slack"),
        {"mode": "bot", "channel": "C0123456789", "bot_token": TOKEN},
    )


def change_url(channel: Channel) -> str:
    return reverse("admin:channels_channel_change", args=[channel.pk])


def form_errors(response: Any) -> dict[str, list[str]]:
    return {k: list(v) for k, v in response.context["adminform"].form.errors.items()}


# --- Adding and editing ------------------------------------------------------------------------


def test_adding_a_channel_starts_by_choosing_its_kind(admin_client: Client) -> None:
    response = admin_client.get(ADD_URL)

    assert response.status_code == 200
    html = response.content.decode()
    for kind in ("email_ses", "slack", "discord", "webhook"):
        assert f'href="?kind={kind}"' in html


def test_the_form_of_a_kind_shows_its_settings_with_secrets_as_password_fields(
    admin_client: Client,
) -> None:
    response = admin_client.get(ADD_URL + "?kind=slack")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="config_channel"' in html
    assert 'type="password" name="config_bot_token"' in html
    assert "Settings: Slack" in html


def test_it_creates_a_channel_with_its_token_encrypted(admin_client: Client) -> None:
    response = admin_client.post(ADD_URL + "?kind=slack", slack_form())

    assert response.status_code == 302
    channel = Channel.objects.get(name="Team news")
    assert channel.kind == "slack"
    assert channel.batch_size == 50
    assert channel.rate_limit_per_second == 1.0
    assert channel.config["channel"] == "C0123456789"
    assert TOKEN not in channel.secrets_encrypted
    assert channel_secrets(channel) == {"bot_token": TOKEN}


def test_schema_errors_show_on_their_fields_and_nothing_is_created(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        ADD_URL + "?kind=slack", slack_form(config_channel="", config_bot_token="xoxp-user")
    )

    assert response.status_code == 200
    assert form_errors(response) == {
        "config_bot_token": ["A bot token starts with xoxb-."],
        "config_channel": ["A channel is required in bot mode."],
    }
    assert "A channel is required in bot mode." in response.content.decode()
    assert not Channel.objects.exists()


def test_a_bad_url_is_an_error_on_the_url_field(admin_client: Client) -> None:
    data = {
        "name": "Hook",
        "batch_size": "10",
        "config_url": "not a url at all",
        "config_secret": WHSEC,
    }

    response = admin_client.post(ADD_URL + "?kind=webhook", data)

    assert response.status_code == 200
    assert form_errors(response) == {"config_url": ["Enter a valid URL."]}
    assert WHSEC not in response.content.decode()
    assert not Channel.objects.exists()


def test_a_limit_out_of_range_is_an_error_on_its_field(admin_client: Client) -> None:
    response = admin_client.post(ADD_URL + "?kind=slack", slack_form(rate_limit_per_second="0"))

    assert response.status_code == 200
    assert form_errors(response) == {
        "rate_limit_per_second": ["The rate limit must be more than 0 (or empty)."]
    }


def test_the_secret_never_appears_in_the_change_page(admin_client: Client) -> None:
    channel = slack_channel()

    response = admin_client.get(change_url(channel))

    html = response.content.decode()
    assert response.status_code == 200
    assert TOKEN not in html
    assert TOKEN[5:] not in html
    assert f"xoxb-{MASK}UvWx" in html
    assert 'name="config_channel" value="C0123456789"' in html


def test_a_submitted_secret_is_not_sent_back_when_the_form_has_errors(
    admin_client: Client,
) -> None:
    channel = slack_channel()
    new_token = "xoxb-9999999999-8888888888888-ZyXwVuTsRqPoNmLkJiHgFeDc"

    response = admin_client.post(
        change_url(channel), slack_form(config_bot_token=new_token, config_channel="")
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert new_token not in html
    assert TOKEN not in html
    assert channel_secrets(Channel.objects.get(pk=channel.pk)) == {"bot_token": TOKEN}


def test_an_empty_secret_field_keeps_the_stored_secret(admin_client: Client) -> None:
    channel = slack_channel()

    response = admin_client.post(
        change_url(channel),
        slack_form(name="Renamed", config_channel="C999", config_bot_token="", is_enabled=""),
    )

    assert response.status_code == 302
    channel.refresh_from_db()
    assert channel.name == "Renamed"
    assert channel.is_enabled is False
    assert channel.config["channel"] == "C999"
    assert channel_secrets(channel) == {"bot_token": TOKEN}


def test_the_kind_of_an_existing_channel_cannot_be_changed(admin_client: Client) -> None:
    channel = slack_channel()

    admin_client.post(change_url(channel), {**slack_form(), "kind": "webhook"})

    channel.refresh_from_db()
    assert channel.kind == "slack"


# --- The list ----------------------------------------------------------------------------------


def test_the_list_shows_state_and_sends_in_the_last_hour(admin_client: Client) -> None:
    busy = slack_channel("Busy")
    Channel.objects.filter(pk=busy.pk).update(
        circuit_state=Channel.CircuitState.OPEN,
        circuit_opened_at=timezone.now(),
        last_error="HTTP 500: internal_error " + "x" * 200,
    )
    quiet = slack_channel("Quiet")
    now = timezone.now()
    for minutes in (5, 30, 59):
        DeliveryFactory(
            channel=busy, status=Delivery.Status.SENT, sent_at=now - timedelta(minutes=minutes)
        )
    DeliveryFactory(channel=busy, status=Delivery.Status.SENT, sent_at=now - timedelta(hours=2))
    DeliveryFactory(channel=busy, status=Delivery.Status.QUEUED)
    DeliveryFactory(channel=busy, status=Delivery.Status.FAILED)

    response = admin_client.get(LIST_URL)

    assert response.status_code == 200
    rows = {c.name: c for c in response.context["cl"].result_list}
    assert rows["Busy"].sends_last_hour == 3
    assert rows["Quiet"].sends_last_hour == 0
    html = response.content.decode()
    assert "Open since" in html
    assert "HTTP 500: internal_error" in html
    assert "x" * 100 not in html
    assert quiet.is_enabled


def test_the_list_costs_the_same_queries_for_two_channels_or_eight(
    admin_client: Client,
) -> None:
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(LIST_URL).status_code == 200
        return len(queries)

    for name in ("a", "b"):
        channel = slack_channel(name)
        DeliveryFactory(channel=channel, status=Delivery.Status.SENT, sent_at=timezone.now())
    with_two = count_queries()
    for name in ("c", "d", "e", "f", "g", "h"):
        channel = slack_channel(name)
        DeliveryFactory(channel=channel, status=Delivery.Status.SENT, sent_at=timezone.now())

    assert count_queries() == with_two


# --- The test-message action -------------------------------------------------------------------


def test_the_action_sends_a_test_message_and_reports_it(
    admin_client: Client, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/ok", method="POST").respond_with_data("", status=204)
    httpserver.expect_request("/gone", method="POST").respond_with_data("", status=410)
    good = save_channel(
        Channel(name="good", kind="webhook"), {"url": httpserver.url_for("/ok"), "secret": WHSEC}
    )
    gone = save_channel(
        Channel(name="gone", kind="webhook"), {"url": httpserver.url_for("/gone"), "secret": WHSEC}
    )

    response = admin_client.post(
        LIST_URL,
        {"action": "send_test_message_action", "_selected_action": [good.pk, gone.pk]},
    )

    assert response.status_code == 302
    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert "good: test message sent." in notes
    assert any(n.startswith("gone: test message permanent: HTTP 410") for n in notes)
    assert len(httpserver.log) == 2
    assert not Delivery.objects.exists()


def test_the_action_reports_a_channel_that_cannot_be_built(admin_client: Client) -> None:
    channel = slack_channel()
    Channel.objects.filter(pk=channel.pk).update(secrets_encrypted="garbage")

    response = admin_client.post(
        LIST_URL, {"action": "send_test_message_action", "_selected_action": [channel.pk]}
    )

    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert notes == [
        f"Team news: The secrets of channel {channel.pk} cannot be decrypted "
        "with any key of FIELD_ENCRYPTION_KEYS."
    ]


def test_someone_without_rights_cannot_see_the_channels(client: Client) -> None:
    mallory: User = UserFactory.create(username="mallory", is_staff=True)
    client.force_login(mallory)

    assert client.get(LIST_URL).status_code == 403


def test_a_channel_of_an_uninstalled_kind_can_be_viewed_but_not_saved(
    admin_client: Client,
) -> None:
    channel = Channel.objects.create(name="Old pager", kind="pager", config={"x": 1})

    page = admin_client.get(change_url(channel))
    response = admin_client.post(change_url(channel), {"name": "Renamed", "batch_size": "10"})

    assert page.status_code == 200
    assert response.status_code == 200
    assert "No backend of kind &#x27;pager&#x27; is installed." in response.content.decode()
    channel.refresh_from_db()
    assert channel.name == "Old pager"


def test_a_channel_whose_secrets_were_lost_is_repaired_by_entering_them_again(
    admin_client: Client,
) -> None:
    channel = slack_channel()
    Channel.objects.filter(pk=channel.pk).update(secrets_encrypted="encrypted-with-a-lost-key")

    page = admin_client.get(change_url(channel))
    without = admin_client.post(change_url(channel), slack_form(config_bot_token=""))
    repaired = admin_client.post(change_url(channel), slack_form())

    assert page.status_code == 200
    assert "cannot be decrypted" in page.content.decode()
    assert form_errors(without) == {"config_bot_token": ["A bot token is required in bot mode."]}
    assert repaired.status_code == 302
    assert channel_secrets(Channel.objects.get(pk=channel.pk)) == {"bot_token": TOKEN}
