"""What a version holds for rendering: its fields and topics, read once into a frozen Source."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

from django.conf import settings

from publishing.rendering.markup import markdown_to_html


class Renderable(Protocol):
    title: str
    slug: str
    summary: str
    body: str
    language: str


@dataclass(frozen=True)
class Source:
    publication_id: int | None
    #: The history row's id: what caches key on, never shown.
    version_id: int | None
    #: The version's number within its publication (1, 2, 3...): what payloads show.
    version_number: int | None
    title: str
    slug: str
    summary: str
    body: str
    language: str
    published_at: datetime | None
    topics: tuple[tuple[str, str], ...]  # (slug, name), sorted by slug
    #: A translation's language (decision 0082): its page is /p/<slug>/<language>/.
    translation: str = ""

    @property
    def url(self) -> str:
        page = f"{settings.SITE_URL}/p/{quote(self.slug)}/"
        return f"{page}{self.translation}/" if self.translation else page


@dataclass(frozen=True)
class TranslatedVersion:
    """A publication version in another language (decision 0082): the title, summary, body and
    language of ``translation`` (a PublicationTranslation or one of its history rows) with the
    slug, topics and dates of ``original`` (a HistoricalPublication row or a Publication)."""

    original: Any
    translation: Any

    @property
    def id(self) -> int:
        """The publication's id, as a version of it carries (feedback links name it)."""
        return int(self.original.id)

    @property
    def title(self) -> str:
        return str(self.translation.title)

    @property
    def slug(self) -> str:
        return str(self.original.slug)

    @property
    def summary(self) -> str:
        return str(self.translation.summary)

    @property
    def body(self) -> str:
        return str(self.translation.body)

    @property
    def language(self) -> str:
        return str(self.translation.language)


def read_source(
    version: Renderable, *, with_topics: bool = True, with_number: bool = False
) -> Source:
    """The fields of a HistoricalPublication row, a live Publication, or any object with the
    Renderable fields (no topics then); the topics are read only ``with_topics``, a history
    row's number within its publication only ``with_number``."""
    from publishing.models import Publication, Topic, count_versions_up_to

    if isinstance(version, TranslatedVersion):
        source = read_source(version.original, with_topics=with_topics, with_number=with_number)
        return replace(
            source,
            title=version.title,
            summary=version.summary,
            body=version.body,
            language=version.language,
            translation=version.language,
        )
    version_id: int | None
    version_number: int | None = None
    if isinstance(version, Publication):
        publication_id: int | None = version.pk
        version_id = None
        topics = version.topics.all() if version.pk else Topic.objects.none()
    elif hasattr(version, "history_id"):
        publication_id = getattr(version, "id", None)
        version_id = version.history_id
        if version_id is not None and with_number:
            version_number = count_versions_up_to(version)
        topic_ids = version.topics.values("topic_id")  # type: ignore[attr-defined]
        topics = Topic.objects.filter(pk__in=topic_ids)
    else:
        # A plain object with the Renderable fields (a channel's test message): no topics.
        publication_id = version_id = None
        topics = Topic.objects.none()
    return Source(
        publication_id=publication_id,
        version_id=version_id,
        version_number=version_number,
        title=version.title,
        slug=version.slug,
        summary=version.summary,
        body=version.body,
        language=version.language,
        published_at=getattr(version, "published_at", None),
        topics=tuple(topics.order_by("slug").values_list("slug", "name")) if with_topics else (),
    )


def body_html(source: Source) -> str:
    """The body as sanitised HTML: what every channel derives its own rendering from."""
    return markdown_to_html(source.body)
