"""A publication's translations in the API (decision 0082): scopes, validation naming the field
and the limit, versions, conditional writes, and the body sanitised when rendered."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from publishing import services
from publishing.models import ApiScope, Publication, PublicationTranslation
from tests.api.conftest import ApiClient, KeyMaker
from tests.factories import PublicationFactory, TopicFactory

pytestmark = pytest.mark.django_db

FRENCH = {
    "language": "fr",
    "title": "Automne",
    "summary": "Les nouveautés.",
    "body": "Bonjour <script>alert(1)</script>**le monde**",
}


@pytest.fixture
def publication() -> Publication:
    topic = TopicFactory.create(slug="news")
    created: Publication = PublicationFactory.create(title="Autumn", slug="autumn", topics=[topic])
    return created


def url(publication: Publication, rest: str = "") -> str:
    return f"/api/v1/publications/{publication.pk}/translations/{rest}"


def errors(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def test_it_adds_reads_lists_changes_and_deletes_a_translation_with_versions(
    api: ApiClient, publication: Publication
) -> None:
    created = api.post(url(publication), FRENCH)
    assert created.status_code == 201, created.content
    assert created["Location"] == url(publication, "fr/")
    body = created.json()
    assert body["title"] == "Automne" and body["version"] == 1
    assert body["url"] == "http://127.0.0.1:8000/p/autumn/fr/"
    assert [row["language"] for row in api.get(url(publication)).json()] == ["fr"]

    read = api.get(url(publication, "fr/"))
    assert read.status_code == 200 and read.json()["summary"] == "Les nouveautés."
    changed = api.patch(
        url(publication, "fr/"), {"title": "Automne 2026"}, **{"If-Match": read["ETag"]}
    )
    assert changed.status_code == 200 and changed.json()["version"] == 2
    stale = api.put(url(publication, "fr/"), {**FRENCH, "title": "X"}, **{"If-Match": read["ETag"]})
    assert stale.status_code == 412
    versions = api.get(url(publication, "fr/versions/")).json()
    assert [(row["number"], row["title"]) for row in versions] == [
        (2, "Automne 2026"),
        (1, "Automne"),
    ]

    assert api.delete(url(publication, "fr/")).status_code == 204
    assert not PublicationTranslation.objects.exists()
    assert api.get(url(publication, "fr/")).status_code == 404
    assert api.get(url(publication, "fr/versions/")).json()[0]["deleted"] is True


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({**FRENCH, "language": "de"}, "language", "choose one of en, fr"),
        ({**FRENCH, "language": "en"}, "language", "a translation is in another language"),
        ({**FRENCH, "language": ""}, "language", ""),
        ({**FRENCH, "title": "T" * 201}, "title", "200"),
        ({**FRENCH, "summary": "S" * 501}, "summary", "500"),
        ({**FRENCH, "body": "x" * 100_001}, "body", "100000"),
        ({**FRENCH, "body": "![](https://example.com/a.png)"}, "body", "without alt text"),
    ],
)
def test_bad_input_names_the_field_and_limit_and_stores_nothing(
    api: ApiClient, publication: Publication, data: dict[str, str], field: str, fragment: str
) -> None:
    found = errors(api.post(url(publication), data))

    assert field in found and fragment in found[field]
    assert not PublicationTranslation.objects.exists()


def test_a_second_translation_in_a_language_and_a_language_change_are_refused(
    api: ApiClient, publication: Publication
) -> None:
    api.post(url(publication), FRENCH)

    assert "already has a translation" in errors(api.post(url(publication), FRENCH))["language"]
    changed = api.put(url(publication, "fr/"), {**FRENCH, "language": "en"})
    assert "cannot change" in errors(changed)["language"]
    assert PublicationTranslation.objects.get().language == "fr"


def test_reading_needs_the_read_scope_and_writing_the_write_scope(
    make_key: KeyMaker, publication: Publication
) -> None:
    reader = ApiClient(make_key(ApiScope.PUBLICATIONS_READ.value))
    writer = ApiClient(make_key(ApiScope.PUBLICATIONS_WRITE.value))

    assert reader.post(url(publication), FRENCH).status_code == 403
    assert writer.post(url(publication), FRENCH).status_code == 201
    assert reader.get(url(publication, "fr/")).status_code == 200
    assert writer.get(url(publication, "fr/")).status_code == 403
    assert reader.delete(url(publication, "fr/")).status_code == 403
    assert ApiClient().get(url(publication)).status_code == 401
    assert ApiClient(make_key()).get("/api/v1/publications/999999/translations/").status_code == 404


def test_an_archived_publications_translations_are_frozen(
    api: ApiClient, publication: Publication
) -> None:
    services.archive(publication, by=None)

    refused = api.post(url(publication), FRENCH)

    assert refused.status_code == 409 and refused.json()["code"] == "archived"


def test_a_script_in_the_body_never_reaches_a_reader(
    api: ApiClient, publication: Publication
) -> None:
    api.post(url(publication), FRENCH)
    services.publish(publication, by=None)

    page = Client().get("/p/autumn/fr/").content.decode()

    assert "<strong>le monde</strong>" in page
    assert "alert(1)" not in page
