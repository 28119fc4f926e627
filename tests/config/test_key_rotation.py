"""docs/operations.md: with the old key in SECRET_KEY_FALLBACKS, links already sent keep working."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from subscribers.tokens import manage_token, preferences_url
from tests.factories import SubscriberFactory

OLD_KEY = "old-key-" + "o" * 60
NEW_KEY = "new-key-" + "n" * 60

pytestmark = pytest.mark.django_db


def test_a_link_signed_with_the_old_key_works_while_the_old_key_is_a_fallback(
    client: Client,
) -> None:
    subscriber = SubscriberFactory.create()
    with override_settings(SECRET_KEY=OLD_KEY):
        url = preferences_url(manage_token(subscriber.pk, subscriber.token_key))
    path = url.removeprefix("http://127.0.0.1:8000")

    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        response = client.get(path)
    assert response.status_code == 200
    assert subscriber.email.encode() in response.content

    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        refused = client.get(path)
    assert refused.status_code == 400
    assert subscriber.email.encode() not in refused.content
