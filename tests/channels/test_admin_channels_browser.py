from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from channels.configuration import MASK, channel_secrets
from channels.models import Channel
from tests.factories import UserFactory

TOKEN = "xoxb-1111111111-2222222222222-AbCdEfGhIjKlMnOpQrStUvWx"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_operator_adds_a_slack_channel_in_a_browser_without_the_token_coming_back(
    browser_page: Any, live_server: Any, output_dir: Path
) -> None:
    UserFactory.create(username="root", is_superuser=True)
    page = browser_page
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "correct horse battery staple")
    page.click("input[type=submit]")

    page.goto(f"{live_server.url}/admin/channels/channel/add/")
    page.click("text=Slack")
    page.fill("#id_name", "Team news")
    page.fill("#id_config_bot_token", TOKEN)
    page.click("input[name=_save]")

    # The channel is missing: the form comes back with the error on that field, token not.
    assert "A channel is required in bot mode." in page.inner_text(".field-config_channel")
    assert page.input_value("#id_config_bot_token") == ""
    assert TOKEN not in page.content()
    page.screenshot(path=str(output_dir / "channel-form-error.png"), full_page=True)

    page.fill("#id_config_channel", "C0123456789")
    page.fill("#id_config_bot_token", TOKEN)
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/channels/channel/")
    assert "Team news" in page.inner_text("#result_list")
    page.screenshot(path=str(output_dir / "channel-list.png"), full_page=True)

    channel = Channel.objects.get(name="Team news")
    page.goto(f"{live_server.url}/admin/channels/channel/{channel.pk}/change/")
    assert f"xoxb-{MASK}UvWx" in page.content()
    assert TOKEN not in page.content()
    page.screenshot(path=str(output_dir / "channel-change.png"), full_page=True)
    assert channel_secrets(channel) == {"bot_token": TOKEN}
