"""Scheduling in the editor's time zone: the browser's, from the admin's cookie (decision 0076)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from publishing.middleware import COOKIE_NAME, zone_named
from publishing.models import Publication

pytestmark = pytest.mark.django_db


def _client(user: User, zone: str | None) -> Client:
    client = Client()
    client.force_login(user)
    if zone is not None:
        client.cookies[COOKIE_NAME] = zone
    return client


def _schedule(publication: Publication) -> str:
    return reverse("admin:publishing_publication_schedule", args=[publication.pk])


def test_a_time_is_shown_and_read_in_the_editors_zone(paula: User, draft: Publication) -> None:
    client = _client(paula, "Europe/Paris")

    page = client.get(_schedule(draft)).content.decode()
    response = client.post(
        _schedule(draft), {"publish_at_0": "2030-01-15", "publish_at_1": "10:00:00"}
    )
    change_page = client.get(reverse("admin:publishing_publication_change", args=[draft.pk]))

    assert 'id="schedule-zone">Europe/Paris<' in page
    assert "Publish at (Europe/Paris)" in page
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.publish_at == datetime(2030, 1, 15, 9, 0, tzinfo=UTC)  # 10:00 in Paris, winter
    assert "for 2030-01-15 10:00 (Europe/Paris)" in change_page.content.decode()


@pytest.mark.parametrize("cookie", [None, "Mars/Olympus_Mons", "../../etc/passwd", "x" * 200])
def test_without_a_known_zone_the_admin_says_utc(
    paula: User, draft: Publication, cookie: str | None
) -> None:
    client = _client(paula, cookie)

    page = client.get(_schedule(draft)).content.decode()
    client.post(_schedule(draft), {"publish_at_0": "2030-01-15", "publish_at_1": "10:00:00"})

    assert 'id="schedule-zone">UTC<' in page
    assert "the admin does not know your time zone yet" in page
    draft.refresh_from_db()
    assert draft.publish_at == datetime(2030, 1, 15, 10, 0, tzinfo=UTC)


def test_a_time_that_does_not_exist_in_the_zone_is_refused_by_name(
    paula: User, draft: Publication
) -> None:
    client = _client(paula, "Europe/Paris")

    # 02:30 on the last Sunday of March 2030 is skipped in Paris (clocks go 02:00 -> 03:00).
    response = client.post(
        _schedule(draft), {"publish_at_0": "2030-03-31", "publish_at_1": "02:30:00"}
    )

    assert response.status_code == 200
    assert "couldn\u2019t be interpreted in time zone Europe/Paris" in response.content.decode()
    draft.refresh_from_db()
    assert draft.publish_at is None


def test_zone_names_are_checked_against_the_iana_list() -> None:
    assert str(zone_named("America/New_York")) == "America/New_York"
    assert zone_named("") is None
    assert zone_named("/etc/localtime") is None
