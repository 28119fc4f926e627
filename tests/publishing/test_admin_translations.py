"""Translations in the admin (decision 0082): added and changed through the service with the
editor's errors on their fields, the publication's rights, versions; and in a real browser
(Playwright driving Debian's Chromium) the editor adds one and the public page links the
languages. Screenshots go to test-output/<test name>/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.test import Client

from publishing import services, translations
from publishing.models import Publication, PublicationTranslation
from publishing.translations import TranslationInput

ADD = "/admin/publishing/publicationtranslation/add/"


def form(publication: Publication, **fields: str) -> dict[str, Any]:
    return {
        "publication": publication.pk,
        "language": "fr",
        "title": "Version de printemps",
        "summary": "Les nouveautés.",
        "body": "# Bonjour\n\nLe texte.",
        "change_reason": "",
        **fields,
    }


@pytest.mark.django_db
def test_an_editor_adds_a_translation_from_the_publications_page(
    client: Client, alice: User, draft: Publication
) -> None:
    client.force_login(alice)
    page = client.get(f"/admin/publishing/publication/{draft.pk}/change/").content.decode()
    assert f'{ADD}?publication={draft.pk}"' in page
    add_page = client.get(f"{ADD}?publication={draft.pk}").content.decode()
    assert "publication-editor" in add_page  # the publication's Markdown editor

    response = client.post(ADD, form(draft, change_reason="First French"))

    assert response.status_code == 302
    translation = PublicationTranslation.objects.get()
    assert (translation.publication, translation.title) == (draft, "Version de printemps")
    version = translation.history.get()
    assert (version.history_user, version.history_change_reason) == (alice, "First French")
    listed = client.get(f"/admin/publishing/publication/{draft.pk}/change/").content.decode()
    assert "Version de printemps" in listed


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"language": "en"}, "language", "a translation is in another language"),
        ({"title": "T" * 201}, "title", "200"),
        ({"summary": "S" * 501}, "summary", "500"),
        ({"body": "![](https://example.com/a.png)"}, "body", "without alt text"),
    ],
)
def test_bad_input_is_shown_on_its_field_and_nothing_is_saved(
    client: Client,
    alice: User,
    draft: Publication,
    fields: dict[str, str],
    field: str,
    fragment: str,
) -> None:
    client.force_login(alice)

    response = client.post(ADD, form(draft, **fields))

    assert response.status_code == 200
    assert fragment in " ".join(response.context["adminform"].form.errors[field])
    assert not PublicationTranslation.objects.exists()


@pytest.mark.django_db
def test_a_second_translation_in_a_language_is_refused_on_the_language_field(
    client: Client, alice: User, draft: Publication
) -> None:
    translations.add_translation(draft, TranslationInput("fr", "Un", "Corps"), by=alice)
    client.force_login(alice)

    response = client.post(ADD, form(draft))

    assert "already has a translation" in response.context["adminform"].form.errors["language"][0]
    assert PublicationTranslation.objects.count() == 1


@pytest.mark.django_db
def test_editing_records_a_version_and_the_versions_page_lists_them(
    client: Client, alice: User, draft: Publication
) -> None:
    translation = translations.add_translation(
        draft, TranslationInput("fr", "Un", "Corps"), by=alice
    )
    client.force_login(alice)
    url = f"/admin/publishing/publicationtranslation/{translation.pk}/change/"

    response = client.post(url, form(draft, title="Deux", change_reason="Better title"))

    assert response.status_code == 302
    translation.refresh_from_db()
    assert translation.title == "Deux" and translation.history.count() == 2
    versions = client.get(url.replace("change/", "history/")).content.decode()
    assert "Better title" in versions and "Deux" in versions and "Un" in versions


@pytest.mark.django_db
def test_an_editor_cannot_change_a_published_publications_translation(
    client: Client, alice: User, paula: User, draft: Publication
) -> None:
    translation = translations.add_translation(
        draft, TranslationInput("fr", "Un", "Corps"), by=alice
    )
    services.publish(draft, by=paula)
    client.force_login(alice)
    url = f"/admin/publishing/publicationtranslation/{translation.pk}/change/"

    client.post(url, form(draft, title="Changed"))

    translation.refresh_from_db()
    assert translation.title == "Un"
    assert client.post(f"{url.replace('change/', 'delete/')}", {"post": "yes"}).status_code == 403


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_editor_adds_a_translation_and_the_public_page_links_the_languages(
    browser_page: Any,
    live_server: Any,
    paula: User,
    draft: Publication,
    output_dir: Path,
    settings: Any,
) -> None:
    settings.SITE_URL = live_server.url
    services.publish(draft, by=paula)
    client = Client()
    client.force_login(paula)
    page = browser_page
    page.context.add_cookies(
        [
            {
                "name": django_settings.SESSION_COOKIE_NAME,
                "value": client.cookies[django_settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    page.set_viewport_size({"width": 1280, "height": 900})

    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/change/")
    page.click("#add-translation-link")
    page.select_option("#id_language", "fr")
    page.fill("#id_title", "Version de printemps")
    page.fill("#id_summary", "Les nouveautés du printemps.")
    page.fill("#id_body", "# Bonjour\n\nDu **texte** en français.")
    page.locator(".markdownx-preview strong", has_text="texte").wait_for()
    page.screenshot(path=str(output_dir / "admin-add-translation.png"), full_page=True)
    page.click("input[name=_save]")
    page.locator(".messagelist").wait_for()
    assert PublicationTranslation.objects.filter(publication=draft, language="fr").exists()

    page.goto(f"{live_server.url}/admin/publishing/publication/{draft.pk}/change/")
    page.locator("text=Version de printemps").first.wait_for()
    page.screenshot(path=str(output_dir / "admin-publication-with-translation.png"), full_page=True)

    page.goto(f"{live_server.url}/p/{draft.slug}/")
    languages = page.locator("nav.languages")
    assert languages.locator("strong").inner_text() == "English"
    page.screenshot(path=str(output_dir / "public-original.png"), full_page=True)
    languages.locator("a", has_text="français").click()
    page.wait_for_url(f"{live_server.url}/p/{draft.slug}/fr/")
    assert page.locator("article header h1").inner_text() == "Version de printemps"
    assert page.locator("html").get_attribute("lang") == "fr"
    hreflangs = page.eval_on_selector_all(
        "link[rel=alternate][hreflang]", "links => links.map(l => [l.hreflang, l.href])"
    )
    assert sorted(hreflangs) == sorted(
        [
            ["en", f"{live_server.url}/p/{draft.slug}/"],
            ["fr", f"{live_server.url}/p/{draft.slug}/fr/"],
            ["x-default", f"{live_server.url}/p/{draft.slug}/"],
        ]
    )
    page.screenshot(path=str(output_dir / "public-french.png"), full_page=True)
    page.locator("nav.languages a", has_text="English").click()
    page.wait_for_url(f"{live_server.url}/p/{draft.slug}/")
