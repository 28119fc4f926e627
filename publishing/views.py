"""The public archive: a publication's page and topic pages, with ETag and Last-Modified.

Only published publications are public: drafts, scheduled and archived ones answer 404. Topic
pages and feeds list publications of public topics only (``Publication.objects.in_archive``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import Count, Max
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import get_object_or_404, render
from django.utils import translation
from django.utils.text import Truncator
from django.views.decorators.http import condition, require_safe

from publishing import rendering
from publishing.models import Publication, PublicationTranslation, Topic
from publishing.rendering import TranslatedVersion
from publishing.translations import language_name

PAGE_SIZE = 20


def access_published(slug: str) -> Publication:
    """The published publication with this slug; Http404 for any other status."""
    return get_object_or_404(Publication.objects.published(), slug=slug)


def access_public_topic(slug: str) -> Topic:
    return get_object_or_404(Topic.objects.public(), slug=slug)


def _etag(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def archive_last_modified() -> datetime | None:
    """When anything shown in a list may last have changed.

    The newest change to any publication or topic: coarse (a draft's edit counts) but it never
    goes backwards when a publication leaves a list, which a maximum over the listed rows would.
    """
    publications = Publication.objects.aggregate(latest=Max("updated_at"))["latest"]
    topics = Topic.objects.aggregate(latest=Max("updated_at"))["latest"]
    stamps = [stamp for stamp in (publications, topics) if stamp is not None]
    return max(stamps) if stamps else None


def listing_etag(topic_slug: str | None, page: object = 1) -> str:
    """A validator for a list: how many publications it holds and their newest change.

    Any edit saves ``updated_at`` (now), publishing adds a row and archiving removes one, so one
    of the two moves whenever the list changes; topic names and flags count too.
    """
    publications = Publication.objects.in_archive()
    if topic_slug is not None:
        publications = publications.filter(topics__slug=topic_slug)
    summary = publications.aggregate(count=Count("pk"), latest=Max("updated_at"))
    topics = Topic.objects.aggregate(count=Count("pk"), latest=Max("updated_at"))
    return _etag("list", topic_slug, page, summary, topics)


def _detail_etag(request: HttpRequest, slug: str, language: str = "") -> str | None:
    row = Publication.objects.published().filter(slug=slug).values_list("pk", "updated_at").first()
    if row is None:
        return None
    # Every page of the publication links every language: a translation added, changed or
    # deleted changes each of them.
    translations = PublicationTranslation.objects.filter(publication_id=row[0]).aggregate(
        count=Count("pk"), latest=Max("updated_at")
    )
    return _etag("detail", row, language, translations)


def _detail_last_modified(request: HttpRequest, slug: str, language: str = "") -> datetime | None:
    published = Publication.objects.published().filter(slug=slug)
    row = published.values_list("pk", "updated_at").first()
    if row is None:
        return None
    latest = PublicationTranslation.objects.filter(publication_id=row[0]).aggregate(
        latest=Max("updated_at")
    )["latest"]
    return max(row[1], latest) if latest is not None else row[1]


#: Open Graph descriptions longer than this are cut (link previews show about two lines).
DESCRIPTION_LENGTH = 200


def share_description(publication: Any, body_html: str) -> str:
    """What a link preview says under the title: the summary, or the body's opening words."""
    text = publication.summary or rendering.html_to_text(body_html)
    return Truncator(" ".join(text.split())).chars(DESCRIPTION_LENGTH)


def keyboard_scrollable(body_html: str) -> str:
    """The sanitised body with its code blocks and tables reachable by keyboard.

    Both scroll sideways on a narrow screen (the page itself never does); a scrolling region
    must take focus for people without a pointer to scroll it (WCAG 2.1.1, axe-core's
    scrollable-region-focusable). The sanitiser leaves these tags with no attribute, so the
    bare tags are all there is to replace; escaped text (``&lt;pre&gt;``) is untouched.
    """
    return body_html.replace("<pre>", '<pre tabindex="0">').replace(
        "<table>", '<table tabindex="0">'
    )


@dataclass(frozen=True)
class LanguageLink:
    """One language of a publication's page: its code, its name in itself, its address."""

    code: str
    name: str
    url: str
    is_current: bool


def language_links(
    publication: Publication, translations: list[PublicationTranslation], current: str
) -> list[LanguageLink]:
    """The original first, then each translation by language code."""
    pages = [(publication.language, publication.get_absolute_url())]
    pages += [
        (translation.language, publication.get_absolute_url() + f"{translation.language}/")
        for translation in sorted(translations, key=lambda translation: translation.language)
    ]
    return [
        LanguageLink(code, language_name(code), settings.SITE_URL + path, code == current)
        for code, path in pages
    ]


def _render_detail(
    request: HttpRequest,
    publication: Publication,
    translations: list[PublicationTranslation],
    shown: Any,
) -> HttpResponse:
    """The page of ``shown``: the publication itself or a TranslatedVersion of it."""
    body_html = rendering.render_body_html(shown)
    links = language_links(publication, translations, shown.language)
    canonical = next(link.url for link in links if link.is_current)
    context = {
        "publication": publication,
        "shown": shown,
        "body_html": keyboard_scrollable(body_html),
        "topics": publication.topics.public(),
        # Absolute, from SITE_URL: the address shared and indexed is the public one, whatever
        # host or proxy the request came through.
        "canonical_url": canonical,
        "description": share_description(shown, body_html),
        "languages": links if len(links) > 1 else [],
        "default_url": links[0].url,
    }
    return render(request, "publishing/publication_detail.html", context)


@require_safe
@condition(etag_func=_detail_etag, last_modified_func=_detail_last_modified)
def publication_detail(request: HttpRequest, slug: str) -> HttpResponse:
    publication = access_published(slug)
    translations = list(publication.translations.all())
    return _render_detail(request, publication, translations, publication)


@require_safe
@condition(etag_func=_detail_etag, last_modified_func=_detail_last_modified)
def publication_translation(request: HttpRequest, slug: str, language: str) -> HttpResponse:
    """The publication in ``language`` (decision 0082), the page's own words in that language
    too; the original's language redirects to the publication's page, any other answers 404."""
    publication = access_published(slug)
    if language == publication.language:
        return HttpResponsePermanentRedirect(publication.get_absolute_url())
    translations = list(publication.translations.all())
    chosen = next((t for t in translations if t.language == language), None)
    if chosen is None:
        raise Http404("No translation in this language.")
    with translation.override(language):
        response = _render_detail(
            request, publication, translations, TranslatedVersion(publication, chosen)
        )
    response["Content-Language"] = language
    return response


def _list_etag(request: HttpRequest, slug: str | None = None) -> str:
    return listing_etag(slug, request.GET.get("page", 1))


def _list_last_modified(request: HttpRequest, slug: str | None = None) -> datetime | None:
    return archive_last_modified()


def _page(request: HttpRequest, publications: Any) -> Any:
    return Paginator(publications, PAGE_SIZE).get_page(request.GET.get("page"))


@require_safe
@condition(etag_func=_list_etag, last_modified_func=_list_last_modified)
def archive_index(request: HttpRequest) -> HttpResponse:
    page = _page(request, Publication.objects.in_archive())
    context = {"page": page, "topics": Topic.objects.offered()}
    return render(request, "publishing/archive_index.html", context)


@require_safe
@condition(etag_func=_list_etag, last_modified_func=_list_last_modified)
def topic_detail(request: HttpRequest, slug: str) -> HttpResponse:
    topic = access_public_topic(slug)
    page = _page(request, Publication.objects.in_archive().filter(topics=topic))
    return render(request, "publishing/topic_detail.html", {"topic": topic, "page": page})
