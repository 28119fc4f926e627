"""Translations of a publication (decision 0082): every write, the versions a dispatch pins,
and the languages a reader may pick.

A translation is the publication in another language: its own title, summary and body, the
publication's topics, slug, status and dates. Writes follow the publication's editing rules
(an editor changes a draft's translations; a scheduled or published one needs the publish
right; an archived one is frozen) and lock the publication's row, so a translation saved while
the publication is being published lands either in that dispatch's pins or after it, never
half-way. Each write records exactly one version (simple-history) with the acting user and a
reason; a dispatch pins the latest version of each translation (``pinned_versions``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils.translation import get_language_info

from publishing.access import Actor, access_publication_for_edit, acting_user
from publishing.exceptions import FieldProblem, InvalidPublicationError
from publishing.models import Publication, PublicationTranslation
from publishing.validation import (
    CHANGE_REASON_MAX_LENGTH,
    check_reason,
    check_summary_and_body,
    check_title,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranslationInput:
    """What an editor writes for one language."""

    language: str
    title: str
    body: str
    summary: str = ""


def language_codes() -> list[str]:
    return [code for code, _ in settings.LANGUAGES]


def language_name(code: str) -> str:
    """The language's name in itself ("Français"), as a reader looks for it."""
    try:
        return str(get_language_info(code)["name_local"])
    except KeyError:
        return code


def check_translation_input(
    publication: Publication,
    data: TranslationInput,
    *,
    instance: PublicationTranslation | None = None,
) -> None:
    """Validate every field; raise InvalidPublicationError listing each problem, naming its
    field and limit: the publication's limits for title, summary and body; a language among
    LANGUAGES, not the publication's own, not already translated, and never changed."""
    problems: list[FieldProblem] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append(FieldProblem(field, code, message))

    codes = language_codes()
    if data.language not in codes:
        problem(
            "language",
            "invalid",
            f"Unknown language {data.language!r}: choose one of {', '.join(codes)}.",
        )
    elif instance is not None and instance.pk is not None:
        if data.language != instance.language:
            problem(
                "language",
                "immutable",
                "A translation's language cannot change: delete it and add one in the other "
                "language.",
            )
    elif data.language == publication.language:
        problem(
            "language",
            "same_as_original",
            f"The publication itself is in {data.language!r}: a translation is in another "
            "language.",
        )
    elif publication.translations.filter(language=data.language).exists():
        problem(
            "language",
            "duplicate",
            f"The publication already has a translation in {data.language!r}: change that one.",
        )
    check_title(data.title, problem)
    check_summary_and_body(data.summary, data.body, problem)
    if problems:
        raise InvalidPublicationError(problems)


def _save_with_version(
    translation: PublicationTranslation, by: Actor | None, reason: str, **kwargs: Any
) -> None:
    """Save and let simple-history record the one version of this write, with who and why."""
    translation._history_user = acting_user(by)  # type: ignore[attr-defined]
    translation._change_reason = reason[:CHANGE_REASON_MAX_LENGTH]  # type: ignore[attr-defined]
    try:
        translation.save(**kwargs)
    finally:
        del translation._history_user  # type: ignore[attr-defined]
        del translation._change_reason  # type: ignore[attr-defined]


def _duplicate(language: str) -> InvalidPublicationError:
    return InvalidPublicationError(
        [
            FieldProblem(
                "language",
                "duplicate",
                f"The publication already has a translation in {language!r}: change that one.",
            )
        ]
    )


def add_translation(
    publication: Publication, data: TranslationInput, *, by: Actor | None, reason: str = ""
) -> PublicationTranslation:
    """Add the publication in ``data.language``, with its first version.

    Raises InvalidPublicationError (naming the field), PublicationStateError (archived) or
    PublishingPermissionError; nothing is written when it raises.
    """
    reason = check_reason(reason) or "Translation added"
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        access_publication_for_edit(locked, by)
        check_translation_input(locked, data)
        translation = PublicationTranslation(
            publication=locked,
            language=data.language,
            title=data.title,
            summary=data.summary,
            body=data.body,
        )
        try:
            with transaction.atomic():
                _save_with_version(translation, by, reason)
        except IntegrityError:
            raise _duplicate(data.language) from None  # lost a race for the language
    logger.info("publication %s translated (%s)", publication.pk, data.language)
    return translation


def update_translation(
    translation: PublicationTranslation,
    data: TranslationInput,
    *,
    by: Actor | None,
    reason: str = "",
) -> PublicationTranslation:
    """Change a translation's title, summary and body; one new version. Nothing changes on
    error."""
    reason = check_reason(reason) or "Translation edited"
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=translation.publication_id)
        access_publication_for_edit(locked, by)
        current = PublicationTranslation.objects.get(pk=translation.pk)
        check_translation_input(locked, data, instance=current)
        current.title, current.summary, current.body = data.title, data.summary, data.body
        _save_with_version(current, by, reason)
    for name in ("title", "summary", "body", "updated_at"):
        setattr(translation, name, getattr(current, name))
    logger.info("translation %s of publication %s edited", translation.pk, locked.pk)
    return translation


def delete_translation(translation: PublicationTranslation, *, by: Actor | None) -> None:
    """Delete a translation. Its versions stay in the history (dispatches that pinned one keep
    sending it); readers of that language get the original from now on."""
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=translation.publication_id)
        access_publication_for_edit(locked, by)
        current = PublicationTranslation.objects.filter(pk=translation.pk).first()
        if current is None:
            return
        current._history_user = acting_user(by)  # type: ignore[attr-defined]
        current._change_reason = "Translation deleted"  # type: ignore[attr-defined]
        current.delete()
    logger.info("translation %s of publication %s deleted", translation.pk, locked.pk)


# --- Versions ----------------------------------------------------------------------------------


def history_model() -> Any:
    return PublicationTranslation.history.model


def pinned_versions(publication: Publication) -> dict[str, int]:
    """Language -> the history row id of each current translation's latest version: what a
    dispatch created now sends (``Dispatch.translation_versions``). Call with the publication's
    row locked, as publishing does, so no translation write falls between."""
    live = PublicationTranslation.objects.filter(publication=publication).values("pk")
    rows = (
        history_model()
        .objects.filter(id__in=live)
        .values("language")
        .annotate(latest=Max("history_id"))
        .order_by("language")
    )
    return {row["language"]: int(row["latest"]) for row in rows}


def version_number(version: Any) -> int:
    """1 for the first version of a publication's translation in that language, 2 for the
    next... (counted across a translation deleted and added again)."""
    rows = history_model().objects.filter(
        publication_id=version.publication_id,
        language=version.language,
        history_id__lte=version.history_id,
    )
    return int(rows.count())


def versions_of(translation: PublicationTranslation) -> list[tuple[int, Any]]:
    """(number, history row) of every version of the publication in that language, newest
    first."""
    rows = list(
        history_model()
        .objects.filter(publication_id=translation.publication_id, language=translation.language)
        .order_by("history_id")
        .select_related("history_user")
    )
    return list(reversed(list(enumerate(rows, start=1))))


# --- Reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranslatedText:
    """What a list shows of a publication in a language: title, summary, page address."""

    title: str
    summary: str
    url: str


def texts_in(language: str, publication_ids: Iterable[int]) -> dict[int, TranslatedText]:
    """The current translations in ``language`` of these publications (one query): publication
    id -> title, summary and the absolute address of its page in that language."""
    ids = list(publication_ids)
    if not ids:
        return {}
    rows = PublicationTranslation.objects.filter(
        language=language, publication_id__in=ids
    ).values_list("publication_id", "title", "summary", "publication__slug")
    return {
        publication_id: TranslatedText(
            title, summary, f"{settings.SITE_URL}/p/{quote(slug)}/{language}/"
        )
        for publication_id, title, summary, slug in rows
    }
