"""Readers' "more like this" / "less like this" (decision 0080): the link's subscriber and
publication, recording a choice and clearing it. Pages and the preference center call these.

A feedback link's token (subscribers.tokens.feedback_token) names one subscriber and one
publication and expires after FEEDBACK_LINK_MAX_AGE_DAYS; its choice is the URL's last part.
The link's GET shows a page and changes nothing (mail scanners follow links); one POST records.
"""

from __future__ import annotations

import logging

from django.db import transaction

from publishing.models import Publication
from subscribers import tokens
from subscribers.exceptions import InvalidLinkError
from subscribers.models import ReaderFeedback, Subscriber

logger = logging.getLogger(__name__)


def access_feedback(token: str) -> tuple[Subscriber, Publication]:
    """The subscriber and publication a feedback token names.

    Raises InvalidLinkError (code ``expired_link`` for a token older than
    FEEDBACK_LINK_MAX_AGE_DAYS, ``invalid_link`` for a forged or altered one, another kind of
    token, a rotated token_key, or a subscriber or publication that no longer exists).
    """
    try:
        claims = tokens.read_feedback_token(token)
    except tokens.TokenError as exc:
        code = "expired_link" if exc.reason == "expired" else "invalid_link"
        raise InvalidLinkError("This feedback link cannot be used.", code=code) from exc
    subscriber = Subscriber.objects.filter(
        pk=claims.subscriber_id, token_key=claims.token_key
    ).first()
    publication = Publication.objects.filter(pk=claims.publication_id).first()
    if subscriber is None or publication is None:
        raise InvalidLinkError("This feedback link is no longer valid.", code="invalid_link")
    return subscriber, publication


def record_reader_feedback(
    subscriber: Subscriber, publication: Publication, choice: str
) -> ReaderFeedback:
    """Store ``choice`` ("more" or "less") as the subscriber's word on the publication; a
    later choice replaces an earlier one (one row per subscriber and publication, an upsert
    safe under concurrent posts). Raises InvalidLinkError for any other choice."""
    if choice not in ReaderFeedback.Choice.values:
        raise InvalidLinkError(f"Unknown feedback choice {choice!r}.", code="invalid_link")
    with transaction.atomic():
        row, _created = ReaderFeedback.objects.update_or_create(
            subscriber=subscriber, publication=publication, defaults={"choice": choice}
        )
    logger.info(
        "Reader feedback of subscriber %s on publication %s: %s",
        subscriber.pk,
        publication.pk,
        choice,
    )
    return row


def clear_reader_feedback(subscriber: Subscriber, publication_id: int | None = None) -> int:
    """Forget the subscriber's feedback on one publication, or all of it (``None``); returns
    how many rows went."""
    rows = ReaderFeedback.objects.filter(subscriber=subscriber)
    if publication_id is not None:
        rows = rows.filter(publication_id=publication_id)
    deleted, _ = rows.delete()
    return deleted


def reader_feedback_of(subscriber: Subscriber) -> list[ReaderFeedback]:
    """The subscriber's feedback, latest first, with each publication's title (one query)."""
    return list(
        ReaderFeedback.objects.filter(subscriber=subscriber)
        .select_related("publication")
        .only("choice", "updated_at", "publication__title", "publication__slug")
    )
