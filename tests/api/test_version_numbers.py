"""One version number per publication (1, 2, 3...), the same in the admin, on dispatches, in the
API and in webhook payloads, whatever the history table's row ids are (decision 0076)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from publishing import rendering, services
from publishing.models import Dispatch, Publication
from tests.api.conftest import ApiClient
from tests.factories import TopicFactory, UserFactory

pytestmark = pytest.mark.django_db


def _publication(title: str, slug: str) -> Publication:
    data = services.PublicationInput(
        title=title, slug=slug, summary="", body="Body.", topics=[TopicFactory.create()]
    )
    return services.create_publication(data, by=None)


def _edit(publication: Publication, body: str) -> None:
    data = services.PublicationInput(
        title=publication.title,
        slug=publication.slug,
        summary=publication.summary,
        body=body,
        topics=list(publication.topics.all()),
    )
    services.update_publication(publication, data, by=None)


def test_a_dispatch_the_api_and_the_webhook_payload_show_the_publications_own_number(
    api: ApiClient,
) -> None:
    # Another publication's versions come in between, so history row ids run ahead of numbers.
    other = _publication("Other", "other")
    spring = _publication("Spring release", "spring-release")
    _edit(other, "Second.")
    _edit(spring, "Second.")
    _edit(other, "Third.")

    dispatch = services.publish(spring, by=None)  # the third version: created, edited, published

    assert dispatch.version.history_id > 3
    assert dispatch.version_number == 3
    assert str(Dispatch.objects.get(pk=dispatch.pk)) == (
        "First publication of “Spring release”, version 3"
    )
    assert api.get(f"/api/v1/dispatches/{dispatch.pk}/").json()["version"] == 3
    versions = api.get(f"/api/v1/publications/{spring.pk}/versions/").json()["results"]
    assert versions[0]["number"] == 3
    assert rendering.render_webhook(dispatch.version)["data"]["version"] == 3

    _edit(spring, "Fourth.")
    resent = services.resend(spring, by=None)
    assert resent.version_number == 4
    assert str(resent) == "Deliberate resend of “Spring release”, version 4"
    assert rendering.render_webhook(resent.version)["data"]["version"] == 4


def test_the_admin_lists_dispatches_by_title_and_number() -> None:
    spring = _publication("Spring release", "spring-release")
    dispatch = services.publish(spring, by=None)
    admin: User = UserFactory.create(username="root", is_superuser=True)
    client = Client()
    client.force_login(admin)

    listing = client.get("/admin/publishing/dispatch/").content.decode()
    page = client.get(f"/admin/publishing/publication/{spring.pk}/change/").content.decode()

    assert "First publication of “Spring release”, version 2" in listing
    assert f"/admin/publishing/dispatch/{dispatch.pk}/change/" in page
    assert "version 2" in page
