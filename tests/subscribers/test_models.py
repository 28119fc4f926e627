from __future__ import annotations

import pytest
from django.db import IntegrityError

from subscribers.models import Subscriber, email_hash
from tests.factories import SubscriberFactory, SuppressionFactory

pytestmark = pytest.mark.django_db


def test_reachable_means_active_confirmed_and_not_suppressed() -> None:
    kept = SubscriberFactory.create(email="kept@example.com")
    SubscriberFactory.create(email="gone@example.com")
    SuppressionFactory.create(email="GONE@example.com")
    SubscriberFactory.create(email="new@example.com", status="pending", confirmed_at=None)

    assert list(Subscriber.objects.reachable()) == [kept]


def test_an_address_is_unique_without_regard_to_case() -> None:
    SubscriberFactory.create(email="Ann@Example.com")

    with pytest.raises(IntegrityError):
        SubscriberFactory.create(email="ann@example.COM")


def test_saving_keeps_the_hash_of_the_normalised_address() -> None:
    ann = SubscriberFactory.create(email=" Ann@Example.com ")

    assert ann.email_hash == email_hash("ann@example.com")
    ann.email = "other@example.com"
    ann.save(update_fields=["email"])
    ann.refresh_from_db()
    assert ann.email_hash == email_hash("other@example.com")
