"""Every write of a topic: create, rename (name, description, visibility), archive, unarchive.

The API calls these (the admin keeps its own forms); each validates its input first, checks the
actor's rights (``by=None`` is the system), and raises a PublishingError naming the field;
nothing is written when it raises. Topic history is kept by django-simple-history, with the
acting user.

A topic's slug never changes once created: it is the topic's name in URLs (its archive page
and feed), in publications' and subscribers' API representations and filters, and in the
integrators' own data; renaming changes the display name only.

Archiving (``archived_at``) stops offering the topic: it leaves the sign-up page and API and the
archive's topic list; existing subscriptions, its page and its feed stay, so nobody loses what
they chose and no link breaks. Unarchiving offers it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone

from publishing.access import Actor, acting_user, require
from publishing.exceptions import FieldProblem, InvalidTopicError
from publishing.models import Topic

logger = logging.getLogger(__name__)

ADD_TOPIC_PERMISSION = "publishing.add_topic"
CHANGE_TOPIC_PERMISSION = "publishing.change_topic"
TOPIC_NAME_MAX_LENGTH = 100
TOPIC_SLUG_MAX_LENGTH = 100
TOPIC_DESCRIPTION_MAX_LENGTH = 2000


@dataclass(frozen=True)
class TopicInput:
    """What a topic is made of. ``slug`` is set once, at creation."""

    name: str
    slug: str
    description: str = ""
    is_public: bool = True


def _check(
    *, name: str | None, slug: str | None, description: str | None, instance: Topic | None
) -> None:
    """Raise InvalidTopicError listing every problem of the fields given (None: unchanged)."""
    problems: list[FieldProblem] = []
    others = Topic.objects.all()
    if instance is not None:
        others = others.exclude(pk=instance.pk)
    if name is not None:
        if not name.strip():
            problems.append(FieldProblem("name", "required", "The name is required."))
        elif len(name) > TOPIC_NAME_MAX_LENGTH:
            problems.append(
                FieldProblem(
                    "name", "too_long", f"The name is longer than {TOPIC_NAME_MAX_LENGTH}."
                )
            )
        elif others.filter(name=name).exists():
            problems.append(FieldProblem("name", "name_taken", f"Another topic is named {name!r}."))
    if slug is not None:
        if not slug:
            problems.append(FieldProblem("slug", "required", "The slug is required."))
        elif len(slug) > TOPIC_SLUG_MAX_LENGTH:
            problems.append(
                FieldProblem(
                    "slug", "too_long", f"The slug is longer than {TOPIC_SLUG_MAX_LENGTH}."
                )
            )
        else:
            try:
                validate_slug(slug)
            except ValidationError:
                problems.append(
                    FieldProblem(
                        "slug", "invalid", "Use only letters, numbers, hyphens and underscores."
                    )
                )
            else:
                if others.filter(slug=slug).exists():
                    problems.append(
                        FieldProblem("slug", "slug_taken", f"Another topic uses {slug!r}.")
                    )
    if description is not None and len(description) > TOPIC_DESCRIPTION_MAX_LENGTH:
        problems.append(
            FieldProblem(
                "description",
                "too_long",
                f"The description is longer than {TOPIC_DESCRIPTION_MAX_LENGTH} characters.",
            )
        )
    if problems:
        raise InvalidTopicError(problems)


def _save(topic: Topic, by: Actor | None) -> None:
    topic._history_user = acting_user(by)  # type: ignore[attr-defined]
    try:
        with transaction.atomic():
            topic.save()
    except IntegrityError:
        # Lost a race for the name or the slug after the check: name the field.
        field = "slug" if Topic.objects.filter(slug=topic.slug).exclude(pk=topic.pk) else "name"
        raise InvalidTopicError(
            [FieldProblem(field, f"{field}_taken", f"Another topic has this {field}.")]
        ) from None
    finally:
        del topic._history_user  # type: ignore[attr-defined]


def create_topic(data: TopicInput, *, by: Actor | None) -> Topic:
    """Create a topic, offered at once when public. Needs publishing.add_topic."""
    require(by, ADD_TOPIC_PERMISSION, "create topics")
    _check(name=data.name, slug=data.slug, description=data.description, instance=None)
    topic = Topic(
        name=data.name.strip(),
        slug=data.slug,
        description=data.description,
        is_public=data.is_public,
    )
    _save(topic, by)
    logger.info("topic %s created", topic.pk)
    return topic


def update_topic(
    topic: Topic,
    *,
    by: Actor | None,
    name: str | None = None,
    description: str | None = None,
    is_public: bool | None = None,
) -> Topic:
    """Rename a topic or change its description or visibility (None keeps a field); the slug
    stays. Needs publishing.change_topic."""
    require(by, CHANGE_TOPIC_PERMISSION, "change topics")
    _check(name=name, slug=None, description=description, instance=topic)
    if name is not None:
        topic.name = name.strip()
    if description is not None:
        topic.description = description
    if is_public is not None:
        topic.is_public = is_public
    _save(topic, by)
    logger.info("topic %s changed", topic.pk)
    return topic


def archive_topic(topic: Topic, *, by: Actor | None) -> Topic:
    """Stop offering a topic (see the module's docstring); archiving twice keeps the first
    date. Needs publishing.change_topic."""
    require(by, CHANGE_TOPIC_PERMISSION, "archive topics")
    if topic.archived_at is None:
        topic.archived_at = timezone.now()
        _save(topic, by)
        logger.info("topic %s archived", topic.pk)
    return topic


def unarchive_topic(topic: Topic, *, by: Actor | None) -> Topic:
    """Offer an archived topic again. Needs publishing.change_topic."""
    require(by, CHANGE_TOPIC_PERMISSION, "unarchive topics")
    if topic.archived_at is not None:
        topic.archived_at = None
        _save(topic, by)
        logger.info("topic %s unarchived", topic.pk)
    return topic
