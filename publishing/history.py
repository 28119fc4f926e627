"""Recording versions: one version per service write, however many rows and m2m signals it
touched.

A service saves with simple-history's automatic records switched off (``save_quietly``,
``set_topics_quietly``) and records exactly one version at the end (``record_version``), with
the acting user and a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from publishing.access import Actor, acting_user
from publishing.models import PUBLICATION_HISTORY, Publication, Topic
from publishing.validation import CHANGE_REASON_MAX_LENGTH


def record_version(
    publication: Publication, *, by: Actor | None, reason: str, created: bool = False
) -> Any:
    """Record the publication's current state (fields and topics) as one new version; return it.

    Call inside the transaction that made the change.
    """
    publication._history_user = acting_user(by)  # type: ignore[attr-defined]
    publication._change_reason = reason[:CHANGE_REASON_MAX_LENGTH]  # type: ignore[attr-defined]
    try:
        PUBLICATION_HISTORY.create_historical_record(publication, "+" if created else "~")
    finally:
        del publication._history_user  # type: ignore[attr-defined]
        del publication._change_reason  # type: ignore[attr-defined]
    return publication.history.order_by("-history_id").first()


def save_quietly(publication: Publication, **kwargs: Any) -> None:
    """Save without a version: the calling service records one with ``record_version``."""
    publication.skip_history_when_saving = True  # type: ignore[attr-defined]
    try:
        publication.save(**kwargs)
    finally:
        del publication.skip_history_when_saving  # type: ignore[attr-defined]


def set_topics_quietly(publication: Publication, topics: Iterable[Topic]) -> None:
    """Set the topics without a version: the calling service records one."""
    publication.skip_history_when_saving = True  # type: ignore[attr-defined]
    try:
        publication.topics.set(topics)
    finally:
        del publication.skip_history_when_saving  # type: ignore[attr-defined]
