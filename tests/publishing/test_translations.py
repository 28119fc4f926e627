"""Translations of a publication (decision 0082): the service's rules and versions, and the
archive's page in each language with its hreflang links."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client

from publishing import services, translations
from publishing.exceptions import (
    InvalidPublicationError,
    PublicationStateError,
    PublishingPermissionError,
)
from publishing.models import BODY_MAX_LENGTH, Publication, PublicationTranslation, Topic
from publishing.translations import TranslationInput
from tests.publishing.conftest import make_publication

pytestmark = pytest.mark.django_db

FRENCH = TranslationInput(
    language="fr",
    title="Version de printemps",
    summary="Les nouveautés du printemps.",
    body="# Bonjour\n\nDu **Markdown** avec un [lien](https://example.com/fr/).",
)


def problems(error: pytest.ExceptionInfo[InvalidPublicationError]) -> dict[str, list[str]]:
    return error.value.by_field()


# --- The service -----------------------------------------------------------------------------


def test_an_editor_adds_a_translation_as_a_version_of_the_same_publication(
    draft: Publication, alice: User
) -> None:
    translation = translations.add_translation(draft, FRENCH, by=alice, reason="First French")

    assert translation.publication_id == draft.pk
    assert Publication.objects.count() == 1  # not a copy
    (version,) = translation.history.all()
    assert (version.title, version.history_user, version.history_change_reason) == (
        "Version de printemps",
        alice,
        "First French",
    )
    assert translations.version_number(version) == 1


def test_each_edit_is_one_version_numbered_per_language_and_deletion_keeps_them(
    draft: Publication, alice: User
) -> None:
    translation = translations.add_translation(draft, FRENCH, by=alice)
    edited = TranslationInput("fr", "Printemps", FRENCH.body, FRENCH.summary)
    translations.update_translation(translation, edited, by=alice)
    translations.update_translation(translation, edited, by=alice, reason="Typo")

    rows = translations.versions_of(translation)
    assert [number for number, _ in rows] == [3, 2, 1]
    assert [row.history_change_reason for _, row in rows] == [
        "Typo",
        "Translation edited",
        "Translation added",
    ]
    translations.delete_translation(translation, by=alice)
    assert not PublicationTranslation.objects.exists()
    history = PublicationTranslation.history.model.objects.filter(publication_id=draft.pk)
    assert history.count() == 4  # nothing rewritten; the deletion is the last row
    again = translations.add_translation(draft, FRENCH, by=alice)
    assert translations.version_number(again.history.latest()) == 5


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        (TranslationInput("de", "Titel", "Text"), "language", "choose one of en, fr"),
        (TranslationInput("en", "Title", "Text"), "language", "a translation is in another"),
        (TranslationInput("fr", "T" * 201, "Text"), "title", "the limit is 200"),
        (TranslationInput("fr", "  ", "Text"), "title", "required"),
        (TranslationInput("fr", "Titre", "Text", "S" * 501), "summary", "the limit is 500"),
        (
            TranslationInput("fr", "Titre", "x" * (BODY_MAX_LENGTH + 1)),
            "body",
            f"the limit is {BODY_MAX_LENGTH}",
        ),
        (TranslationInput("fr", "Titre", "![](https://e.x/a.png)"), "body", "without alt"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_limit_and_nothing_is_stored(
    draft: Publication, alice: User, data: TranslationInput, field: str, fragment: str
) -> None:
    with pytest.raises(InvalidPublicationError) as error:
        translations.add_translation(draft, data, by=alice)

    assert fragment in " ".join(problems(error)[field])
    assert not PublicationTranslation.objects.exists()
    assert not PublicationTranslation.history.model.objects.exists()


def test_a_second_translation_in_the_same_language_is_refused(
    draft: Publication, alice: User
) -> None:
    translations.add_translation(draft, FRENCH, by=alice)

    with pytest.raises(InvalidPublicationError) as error:
        translations.add_translation(draft, FRENCH, by=alice)

    assert "already has a translation in 'fr'" in problems(error)["language"][0]
    assert PublicationTranslation.objects.count() == 1


def test_a_translations_language_never_changes_and_nothing_is_written(
    draft: Publication, alice: User
) -> None:
    translation = translations.add_translation(draft, FRENCH, by=alice)

    with pytest.raises(InvalidPublicationError) as error:
        translations.update_translation(
            translation, TranslationInput("en", "Other", "Body"), by=alice
        )

    assert "cannot change" in problems(error)["language"][0]
    translation.refresh_from_db()
    assert (translation.language, translation.title) == ("fr", "Version de printemps")
    assert translation.history.count() == 1


def test_the_original_cannot_take_a_language_it_has_a_translation_in(
    draft: Publication, alice: User, topic: Topic
) -> None:
    translations.add_translation(draft, FRENCH, by=alice)
    data = services.PublicationInput(
        title=draft.title, slug=draft.slug, body=draft.body, topics=[topic], language="fr"
    )

    with pytest.raises(InvalidPublicationError) as error:
        services.update_publication(draft, data, by=alice)

    assert "has a translation in 'fr'" in problems(error)["language"][0]
    draft.refresh_from_db()
    assert draft.language == "en"


def test_translations_follow_the_publications_editing_rules(
    draft: Publication, alice: User, paula: User, mallory: User
) -> None:
    with pytest.raises(PublishingPermissionError):
        translations.add_translation(draft, FRENCH, by=mallory)
    services.publish(draft, by=paula)
    with pytest.raises(PublishingPermissionError):
        translations.add_translation(draft, FRENCH, by=alice)  # an editor, a published one
    translation = translations.add_translation(draft, FRENCH, by=paula)
    services.archive(draft, by=paula)
    with pytest.raises(PublicationStateError):
        translations.delete_translation(translation, by=paula)
    assert PublicationTranslation.objects.count() == 1


def test_publishing_pins_the_latest_version_of_each_translation(
    draft: Publication, alice: User, paula: User
) -> None:
    translation = translations.add_translation(draft, FRENCH, by=alice)
    translations.update_translation(
        translation, TranslationInput("fr", "Printemps", "Corps"), by=alice
    )

    dispatch = services.publish(draft, by=paula)

    latest = translation.history.latest()
    assert dispatch.translation_versions == {"fr": latest.history_id}
    assert latest.title == "Printemps"


# --- The archive ------------------------------------------------------------------------------


@pytest.fixture
def translated(paula: User, topic: Topic) -> Publication:
    publication = make_publication(
        by=paula, topics=[topic], slug="spring", body="Hello <script>alert(1)</script>**world**"
    )
    translations.add_translation(
        publication,
        TranslationInput(
            "fr",
            "Version de printemps",
            "Bonjour <script>alert(2)</script>**le monde**",
            "Les nouveautés.",
        ),
        by=paula,
    )
    services.publish(publication, by=paula)
    return publication


def alternates(html: str) -> dict[str, str]:
    return dict(re.findall(r'<link rel="alternate" hreflang="([^"]+)" href="([^"]+)">', html))


def test_each_language_has_a_page_linking_every_language_and_x_default(
    client: Client, translated: Publication
) -> None:
    original = client.get("/p/spring/", HTTP_ACCEPT_LANGUAGE="en")
    french = client.get("/p/spring/fr/", HTTP_ACCEPT_LANGUAGE="en")

    expected = {
        "en": "http://127.0.0.1:8000/p/spring/",
        "fr": "http://127.0.0.1:8000/p/spring/fr/",
        "x-default": "http://127.0.0.1:8000/p/spring/",
    }
    for response in (original, french):
        assert response.status_code == 200
        assert alternates(response.content.decode()) == expected
    page = french.content.decode()
    assert '<html lang="fr">' in page and '<article lang="fr">' in page
    assert "<h1>Version de printemps</h1>" in page
    assert "<strong>le monde</strong>" in page and "alert(2)" not in page
    assert '<link rel="canonical" href="http://127.0.0.1:8000/p/spring/fr/">' in page
    assert french["Content-Language"] == "fr"
    # Visible links between the languages, each named in itself.
    assert '<a href="http://127.0.0.1:8000/p/spring/" hreflang="en" lang="en">English</a>' in page
    assert "Lire en :" in page
    english = original.content.decode()
    assert 'hreflang="fr" lang="fr">français</a>' in english
    assert '<strong lang="en" aria-current="page">English</strong>' in english


def test_an_untranslated_publication_has_no_language_links(
    client: Client, paula: User, topic: Topic
) -> None:
    publication = make_publication(by=paula, topics=[topic], slug="plain")
    services.publish(publication, by=paula)

    page = client.get("/p/plain/").content.decode()

    assert "hreflang" not in page
    assert client.get("/p/plain/fr/").status_code == 404


def test_the_originals_language_redirects_and_an_unknown_one_is_not_found(
    client: Client, translated: Publication
) -> None:
    response = client.get("/p/spring/en/")

    assert response.status_code == 301 and response["Location"] == "/p/spring/"
    assert client.get("/p/spring/de/").status_code == 404
    assert client.get("/p/spring/<script>/").status_code == 404


def test_a_draft_translation_page_is_not_public(
    client: Client, draft: Publication, alice: User
) -> None:
    translations.add_translation(draft, FRENCH, by=alice)

    assert client.get(f"/p/{draft.slug}/fr/").status_code == 404


def test_the_pages_validators_change_when_a_translation_changes(
    client: Client, translated: Publication, paula: User
) -> None:
    first = client.get("/p/spring/")
    etag = first["ETag"]
    assert client.get("/p/spring/", HTTP_IF_NONE_MATCH=etag).status_code == 304

    translation = translated.translations.get()
    translations.update_translation(
        translation, TranslationInput("fr", "Nouveau titre", "Corps"), by=paula
    )

    assert client.get("/p/spring/", HTTP_IF_NONE_MATCH=etag).status_code == 200
    assert "Nouveau titre" in client.get("/p/spring/fr/").content.decode()


def test_the_feeds_list_the_original(client: Client, translated: Publication) -> None:
    feed = client.get("/feeds/rss/").content.decode()

    assert "Spring release" in feed and "Version de printemps" not in feed
