"""Checks of what an editor writes, before any write: every field of a publication, a time to
publish at, a change note. Each raises InvalidPublicationError naming the field and its limit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.utils import timezone

from publishing.abtests import check_ab_test
from publishing.exceptions import FieldProblem, InvalidPublicationError
from publishing.models import (
    BODY_MAX_LENGTH,
    MAX_TOPICS,
    MIN_TOPICS,
    SUMMARY_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Publication,
    Topic,
)
from publishing.rendering.markup import markdown_to_html

TopicRef = Topic | str | int
CHANGE_REASON_MAX_LENGTH = 100


@dataclass(frozen=True)
class PublicationInput:
    """What an editor writes. ``topics`` are Topic objects, slugs or ids."""

    title: str
    slug: str
    body: str
    topics: Sequence[TopicRef]
    summary: str = ""
    language: str = "en"
    #: A/B subjects (decision 0079): none, or two to four; and the test's settings.
    subjects: Sequence[str] = ()
    ab_share: int = 20
    ab_wait_hours: int = 4
    ab_metric: str = "clicks"
    ab_min_sample: int = 100


def check_publication_input(
    data: PublicationInput, *, instance: Publication | None = None
) -> list[Topic]:
    """Validate every field; return the resolved topics.

    Raises InvalidPublicationError listing every problem, each naming its field and limit.
    """
    problems: list[FieldProblem] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append(FieldProblem(field, code, message))

    check_title(data.title, problem)
    if not data.slug:
        problem("slug", "required", "The slug is required.")
    elif len(data.slug) > TITLE_MAX_LENGTH:
        problem("slug", "too_long", f"The slug is longer than {TITLE_MAX_LENGTH} characters.")
    else:
        try:
            validate_slug(data.slug)
        except ValidationError:
            problem("slug", "invalid", "Use only letters, numbers, hyphens and underscores.")
        else:
            clash = Publication.objects.filter(slug=data.slug)
            if instance is not None and instance.pk is not None:
                clash = clash.exclude(pk=instance.pk)
            if clash.exists():
                problem("slug", "slug_taken", f"Another publication uses the slug {data.slug!r}.")
    check_summary_and_body(data.summary, data.body, problem)
    if data.language not in {code for code, _ in settings.LANGUAGES}:
        problem("language", "invalid", f"Unknown language {data.language!r}.")
    elif instance is not None and instance.pk is not None:
        translated = instance.translations.filter(language=data.language)
        if translated.exists():
            problem(
                "language",
                "translated",
                f"This publication has a translation in {data.language!r}: delete that "
                "translation before making it the original's language.",
            )
    problems.extend(
        check_ab_test(
            list(data.subjects),
            data.ab_share,
            data.ab_wait_hours,
            data.ab_metric,
            data.ab_min_sample,
        )
    )
    topics = _resolve_topics(data.topics, problem, instance=instance)
    if problems:
        raise InvalidPublicationError(problems)
    return topics


def check_title(title: str, problem: Callable[[str, str, str], None]) -> None:
    """Report a missing or over-long title (a publication's or a translation's)."""
    if not title.strip():
        problem("title", "required", "The title is required.")
    elif len(title) > TITLE_MAX_LENGTH:
        problem(
            "title",
            "too_long",
            f"The title has {len(title)} characters; the limit is {TITLE_MAX_LENGTH}.",
        )


def check_summary_and_body(
    summary: str, body: str, problem: Callable[[str, str, str], None]
) -> None:
    """Report an over-long summary, and a missing or over-long body or one with an image
    without alt text (a publication's or a translation's)."""
    if len(summary) > SUMMARY_MAX_LENGTH:
        problem(
            "summary",
            "too_long",
            f"The summary has {len(summary)} characters; the limit is {SUMMARY_MAX_LENGTH}.",
        )
    if not body.strip():
        problem("body", "required", "The body is required.")
    elif len(body) > BODY_MAX_LENGTH:
        problem(
            "body",
            "too_long",
            f"The body has {len(body)} characters; the limit is {BODY_MAX_LENGTH}.",
        )
    else:
        for src in images_without_alt(body):
            problem(
                "body",
                "image_without_alt",
                f"The body has an image without alt text ({src or 'with no address'}): "
                f"describe it between the brackets, as in ![A red bicycle]({src or '...'}).",
            )


class _ImageFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.missing: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "img" and not (values.get("alt") or "").strip():
            self.missing.append(values.get("src") or "")


def images_without_alt(body: str) -> list[str]:
    """The address of every image of the body that readers of a screen reader would miss.

    Read from the rendering readers get (Markdown ``![](...)`` and raw ``<img>`` alike), so an
    image the sanitiser drops is not reported and one it keeps always is.
    """
    finder = _ImageFinder()
    finder.feed(markdown_to_html(body))
    finder.close()
    return finder.missing


def _resolve_topics(
    refs: Sequence[TopicRef], problem: Any, *, instance: Publication | None = None
) -> list[Topic]:
    """The topics ``refs`` name. An archived topic is offered to nobody: a publication may keep
    one it already had, never gain one."""
    unique_refs = list(dict.fromkeys(refs))
    if len(unique_refs) < MIN_TOPICS:
        problem("topics", "required", f"Choose at least {MIN_TOPICS} topic.")
        return []
    if len(unique_refs) > MAX_TOPICS:
        problem(
            "topics",
            "too_many",
            f"{len(unique_refs)} topics chosen; the limit is {MAX_TOPICS}.",
        )
        return []
    objects = [ref for ref in unique_refs if isinstance(ref, Topic)]
    slugs = [ref for ref in unique_refs if isinstance(ref, str)]
    ids = [ref for ref in unique_refs if isinstance(ref, int)]
    found = {topic.slug: topic for topic in Topic.objects.filter(slug__in=slugs)}
    found_ids = {topic.pk: topic for topic in Topic.objects.filter(pk__in=ids)}
    unknown = [s for s in slugs if s not in found] + [str(i) for i in ids if i not in found_ids]
    unsaved = [topic for topic in objects if topic.pk is None]
    if unknown or unsaved:
        names = ", ".join(unknown + [t.slug for t in unsaved])
        problem("topics", "unknown_topic", f"Unknown topic: {names}.")
        return []
    topics = {topic.pk: topic for topic in [*objects, *found.values(), *found_ids.values()]}
    kept: set[int] = set()
    if instance is not None and instance.pk is not None:
        kept = set(instance.topics.values_list("pk", flat=True))
    archived = [
        topic.slug
        for topic in Topic.objects.filter(pk__in=list(topics), archived_at__isnull=False)
        if topic.pk not in kept
    ]
    if archived:
        problem(
            "topics",
            "archived_topic",
            f"Archived topic: {', '.join(sorted(archived))}. Unarchive it first, or choose "
            "another.",
        )
        return []
    return list(topics.values())


def check_publish_at(publish_at: datetime | None, *, now: datetime | None = None) -> datetime:
    """A time to publish at: given, aware and in the future."""
    now = now or timezone.now()
    if publish_at is None:
        raise InvalidPublicationError(
            [FieldProblem("publish_at", "required", "Give the date and time to publish at.")]
        )
    if timezone.is_naive(publish_at):
        raise InvalidPublicationError(
            [FieldProblem("publish_at", "invalid", "Give a time zone with the date and time.")]
        )
    if publish_at <= now:
        raise InvalidPublicationError(
            [
                FieldProblem(
                    "publish_at",
                    "in_past",
                    f"{publish_at.isoformat()} is in the past; choose a time after "
                    f"{now.isoformat(timespec='seconds')}.",
                )
            ]
        )
    return publish_at


def check_reason(reason: str) -> str:
    """A change note within CHANGE_REASON_MAX_LENGTH characters."""
    if len(reason) > CHANGE_REASON_MAX_LENGTH:
        raise InvalidPublicationError(
            [
                FieldProblem(
                    "change_reason",
                    "too_long",
                    f"The note has {len(reason)} characters; the limit is "
                    f"{CHANGE_REASON_MAX_LENGTH}.",
                )
            ]
        )
    return reason
