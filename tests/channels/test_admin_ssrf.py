"""The admin and the outbound-URL guard (decision 0071): an internal URL is an error on its field,
and the test-send action shows the peer's status, never its body."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from pytest_httpserver import HTTPServer

from channels.configuration import save_channel
from channels.models import Channel
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

WHSEC = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
INTERNAL_BODY = "instance-id: i-0123 iam/security-credentials/admin-role"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    root: User = UserFactory.create(username="root", is_superuser=True, email="root@example.com")
    client.force_login(root)
    return client


def test_an_internal_url_is_an_error_on_the_url_field_of_the_admin_form(
    admin_client: Client, settings: Any
) -> None:
    settings.OUTBOUND_ALLOWED_HOSTS = []
    data = {
        "name": "Hook",
        "batch_size": "10",
        "config_url": "http://169.254.169.254/latest/meta-data/",
        "config_secret": WHSEC,
    }

    response = admin_client.post(reverse("admin:channels_channel_add") + "?kind=webhook", data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["config_url"]
    assert "169.254.169.254 is a cloud metadata address" in errors["config_url"][0]
    assert not Channel.objects.exists()


def test_the_admin_test_send_shows_the_status_but_never_the_peers_body(
    admin_client: Client, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data(INTERNAL_BODY, status=403)
    channel = save_channel(
        Channel(name="hook", kind="webhook"), {"url": httpserver.url_for("/hook"), "secret": WHSEC}
    )

    response = admin_client.post(
        reverse("admin:channels_channel_changelist"),
        {"action": "send_test_message_action", "_selected_action": [channel.pk]},
    )

    notes = [str(m) for m in get_messages(response.wsgi_request)]
    assert notes == ["hook: test message permanent: HTTP 403: the endpoint refused the message"]
    assert len(httpserver.log) == 1
