"""Every write of the publishing app: authoring, versions, publishing, scheduling, archiving.

The admin, the management commands, the django-q2 tasks (and later the API) call these functions
and nothing else to change publications, so the rules live here once. Each function validates
its input first and raises a PublishingError (publishing.exceptions) naming the field; nothing is
written when it raises.

Versions: a service saves with simple-history's automatic records switched off and records
exactly one version at the end (``record_version``), with the acting user and a reason, so one
edit is one version however many rows and m2m signals it touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from publishing import rendering
from publishing.exceptions import (
    FieldProblem,
    InvalidPublicationError,
    PublicationStateError,
    PublishingError,
    PublishingPermissionError,
)
from publishing.models import (
    BODY_MAX_LENGTH,
    MAX_TOPICS,
    MIN_TOPICS,
    PUBLICATION_HISTORY,
    SUMMARY_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Dispatch,
    Publication,
    Topic,
)

logger = logging.getLogger(__name__)

Actor = AuthUser | AnonymousUser
TopicRef = Topic | str | int
CHANGE_REASON_MAX_LENGTH = 100
PLAN_DISPATCH_TASK = "channels.tasks.plan_dispatch"
PUBLISH_PERMISSION = "publishing.publish_publication"
ARCHIVE_PERMISSION = "publishing.archive_publication"
CHANGE_PERMISSION = "publishing.change_publication"
ADD_PERMISSION = "publishing.add_publication"
DELETE_PERMISSION = "publishing.delete_publication"
EDITABLE_FIELDS = ("title", "slug", "summary", "body", "language")


@dataclass(frozen=True)
class PublicationInput:
    """What an editor writes. ``topics`` are Topic objects, slugs or ids."""

    title: str
    slug: str
    body: str
    topics: Sequence[TopicRef]
    summary: str = ""
    language: str = "en"


# --- Checks (validation only, no writes) -------------------------------------------------------


def check_publication_input(
    data: PublicationInput, *, instance: Publication | None = None
) -> list[Topic]:
    """Validate every field; return the resolved topics.

    Raises InvalidPublicationError listing every problem, each naming its field and limit.
    """
    problems: list[FieldProblem] = []

    def problem(field: str, code: str, message: str) -> None:
        problems.append(FieldProblem(field, code, message))

    if not data.title.strip():
        problem("title", "required", "The title is required.")
    elif len(data.title) > TITLE_MAX_LENGTH:
        problem(
            "title",
            "too_long",
            f"The title has {len(data.title)} characters; the limit is {TITLE_MAX_LENGTH}.",
        )
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
    if len(data.summary) > SUMMARY_MAX_LENGTH:
        problem(
            "summary",
            "too_long",
            f"The summary has {len(data.summary)} characters; the limit is {SUMMARY_MAX_LENGTH}.",
        )
    if not data.body.strip():
        problem("body", "required", "The body is required.")
    elif len(data.body) > BODY_MAX_LENGTH:
        problem(
            "body",
            "too_long",
            f"The body has {len(data.body)} characters; the limit is {BODY_MAX_LENGTH}.",
        )
    if data.language not in {code for code, _ in settings.LANGUAGES}:
        problem("language", "invalid", f"Unknown language {data.language!r}.")
    topics = _resolve_topics(data.topics, problem)
    if problems:
        raise InvalidPublicationError(problems)
    return topics


def _resolve_topics(refs: Sequence[TopicRef], problem: Any) -> list[Topic]:
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


def _check_reason(reason: str) -> str:
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


def _actor(by: Actor | None) -> AuthUser | None:
    return by if isinstance(by, AuthUser) else None


def _has_perm(by: Actor | None, permission: str) -> bool:
    # ``by=None`` is the system itself: the scheduler and operators' management commands.
    return by is None or bool(by.has_perm(permission))


def _require(by: Actor | None, permission: str, action: str) -> None:
    if not _has_perm(by, permission):
        raise PublishingPermissionError(f"You may not {action}.", code="permission_denied")


def can_edit(publication: Publication, by: Actor | None) -> bool:
    """Editors change drafts; changing a scheduled or published one needs the publish right."""
    if publication.status == Publication.Status.ARCHIVED:
        return False
    if not _has_perm(by, CHANGE_PERMISSION):
        return False
    return publication.status == Publication.Status.DRAFT or _has_perm(by, PUBLISH_PERMISSION)


def access_publication_for_edit(publication: Publication, by: Actor | None) -> Publication:
    if publication.status == Publication.Status.ARCHIVED:
        raise PublicationStateError(
            "An archived publication cannot be changed.", code="archived", field="status"
        )
    _require(by, CHANGE_PERMISSION, "change publications")
    if not can_edit(publication, by):
        raise PublishingPermissionError(
            f"Only a publisher may change a {publication.get_status_display().lower()} "
            "publication.",
        )
    return publication


# --- Versions ----------------------------------------------------------------------------------


def record_version(
    publication: Publication, *, by: Actor | None, reason: str, created: bool = False
) -> Any:
    """Record the publication's current state (fields and topics) as one new version; return it.

    Call inside the transaction that made the change.
    """
    publication._history_user = _actor(by)  # type: ignore[attr-defined]
    publication._change_reason = reason[:CHANGE_REASON_MAX_LENGTH]  # type: ignore[attr-defined]
    try:
        PUBLICATION_HISTORY.create_historical_record(publication, "+" if created else "~")
    finally:
        del publication._history_user  # type: ignore[attr-defined]
        del publication._change_reason  # type: ignore[attr-defined]
    return publication.history.order_by("-history_id").first()


def _save_quietly(publication: Publication, **kwargs: Any) -> None:
    publication.skip_history_when_saving = True  # type: ignore[attr-defined]
    try:
        publication.save(**kwargs)
    finally:
        del publication.skip_history_when_saving  # type: ignore[attr-defined]


def _set_topics_quietly(publication: Publication, topics: Iterable[Topic]) -> None:
    publication.skip_history_when_saving = True  # type: ignore[attr-defined]
    try:
        publication.topics.set(topics)
    finally:
        del publication.skip_history_when_saving  # type: ignore[attr-defined]


def create_publication(
    data: PublicationInput, *, by: Actor | None, reason: str = ""
) -> Publication:
    """Create a draft and its first version.

    Raises InvalidPublicationError (naming the field) or PublishingPermissionError.
    """
    _require(by, ADD_PERMISSION, "create publications")
    topics = check_publication_input(data)
    reason = _check_reason(reason) or "Created"
    with transaction.atomic():
        publication = Publication(
            title=data.title,
            slug=data.slug,
            summary=data.summary,
            body=data.body,
            language=data.language,
            author=_actor(by),
        )
        try:
            _save_quietly(publication)
        except IntegrityError:
            # Lost a race for the slug after the check.
            raise InvalidPublicationError(
                [FieldProblem("slug", "slug_taken", f"Another publication uses {data.slug!r}.")]
            ) from None
        _set_topics_quietly(publication, topics)
        record_version(publication, by=by, reason=reason, created=True)
    logger.info("publication %s created", publication.pk)
    return publication


def update_publication(
    publication: Publication, data: PublicationInput, *, by: Actor | None, reason: str = ""
) -> Publication:
    """Change the editorial fields and topics; one new version. Nothing changes on error."""
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        access_publication_for_edit(locked, by)
        topics = check_publication_input(data, instance=locked)
        reason = _check_reason(reason) or "Edited"
        for name in EDITABLE_FIELDS:
            setattr(locked, name, getattr(data, name))
        try:
            with transaction.atomic():
                _save_quietly(locked)
        except IntegrityError:
            raise InvalidPublicationError(
                [FieldProblem("slug", "slug_taken", f"Another publication uses {data.slug!r}.")]
            ) from None
        _set_topics_quietly(locked, topics)
        record_version(locked, by=by, reason=reason)
    _refresh(publication, locked)
    logger.info("publication %s edited", publication.pk)
    return publication


def delete_draft(publication: Publication, *, by: Actor | None) -> None:
    """Delete a draft that was never sent. Its versions stay in the history table.

    Raises PublishingPermissionError, or PublicationStateError when it is not a draft.
    """
    _require(by, DELETE_PERMISSION, "delete publications")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        if locked.status != Publication.Status.DRAFT or locked.dispatches.exists():
            raise PublicationStateError(
                f"Only a draft can be deleted; this one is {locked.get_status_display().lower()}.",
                code="not_a_draft",
                field="status",
            )
        publication_id = locked.pk
        locked.delete()
    logger.info("draft publication %s deleted", publication_id)


def restore_version(publication: Publication, version: Any, *, by: Actor | None) -> Any:
    """Make ``version``'s title, summary, body, language and topics current, as a new version.

    History is never rewritten: the restored state is appended. Topics deleted since are left
    out; when none remain the restore fails on the topics field. Returns the new version.
    """
    if version.id != publication.pk:
        raise InvalidPublicationError(
            [FieldProblem("version", "invalid", "That version belongs to another publication.")]
        )
    topic_ids = list(version.topics.values_list("topic_id", flat=True))
    topics = list(Topic.objects.filter(pk__in=topic_ids))
    number = version_number(version)
    data = PublicationInput(
        title=version.title,
        slug=publication.slug,
        summary=version.summary,
        body=version.body,
        topics=topics,
        language=version.language,
    )
    update_publication(publication, data, by=by, reason=f"Restored version {number}")
    return publication.history.order_by("-history_id").first()


def version_number(version: Any) -> int:
    """1 for a publication's first version, 2 for the next, and so on."""
    history = type(version).objects.filter(id=version.id, history_id__lte=version.history_id)
    return int(history.count())


def _refresh(target: Publication, source: Publication) -> None:
    for field in Publication._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))


# --- Publishing --------------------------------------------------------------------------------


def _enqueue_plan(dispatch: Dispatch) -> None:
    dispatch_id = dispatch.pk
    # After commit only: a worker must never see a dispatch id whose row may yet roll back.
    transaction.on_commit(lambda: async_task(PLAN_DISPATCH_TASK, dispatch_id))


def _publish_locked(publication: Publication, by: Actor | None, reason: str) -> Dispatch:
    """Publish a row already locked by the caller's transaction."""
    existing = publication.dispatches.filter(kind=Dispatch.Kind.PUBLISH).first()
    if existing is not None:
        logger.info("publication %s already published by dispatch %s", publication.pk, existing.pk)
        return existing
    if publication.status == Publication.Status.ARCHIVED:
        raise PublicationStateError(
            "An archived publication cannot be published.", code="archived", field="status"
        )
    topics_count = publication.topics.count()
    if topics_count < MIN_TOPICS:
        raise InvalidPublicationError(
            [FieldProblem("topics", "required", "Choose at least one topic before publishing.")]
        )
    publication.status = Publication.Status.PUBLISHED
    publication.published_at = timezone.now()
    _save_quietly(publication, update_fields=["status", "published_at", "updated_at"])
    version = record_version(publication, by=by, reason=reason)
    dispatch = Dispatch.objects.create(
        publication=publication,
        version=version,
        kind=Dispatch.Kind.PUBLISH,
        created_by=_actor(by),
    )
    _enqueue_plan(dispatch)
    logger.info(
        "publication %s published as version %s, dispatch %s",
        publication.pk,
        version.history_id,
        dispatch.pk,
    )
    return dispatch


def publish(publication: Publication, by: Actor | None) -> Dispatch:
    """Publish now: mark published, record the version, create the one "publish" Dispatch.

    Runs in one transaction holding the publication's row lock (SELECT ... FOR UPDATE), so two
    concurrent calls serialise and the second returns the first's dispatch: publishing twice
    creates no second dispatch (the partial unique constraint backs this up). The fan-out task is
    enqueued after commit. Raises PublishingPermissionError, PublicationStateError (archived),
    InvalidPublicationError (no topic).
    """
    _require(by, PUBLISH_PERMISSION, "publish")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        dispatch = _publish_locked(locked, by, reason="Published")
    _refresh(publication, locked)
    return dispatch


def resend(publication: Publication, by: Actor | None) -> Dispatch:
    """Deliberately send a published publication again, as its current version: a new dispatch."""
    _require(by, PUBLISH_PERMISSION, "resend")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        if locked.status != Publication.Status.PUBLISHED:
            raise PublicationStateError(
                "Only a published publication can be sent again.",
                code="not_published",
                field="status",
            )
        version = locked.history.order_by("-history_id").first()
        dispatch = Dispatch.objects.create(
            publication=locked,
            version=version,
            kind=Dispatch.Kind.RESEND,
            created_by=_actor(by),
        )
        _enqueue_plan(dispatch)
    logger.info("publication %s resent by dispatch %s", publication.pk, dispatch.pk)
    return dispatch


def schedule(
    publication: Publication, publish_at: datetime | None, by: Actor | None
) -> Publication:
    """Schedule a draft (or reschedule) to publish at ``publish_at``, a time in the future."""
    _require(by, PUBLISH_PERMISSION, "schedule")
    publish_at = check_publish_at(publish_at)
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        if locked.status not in (Publication.Status.DRAFT, Publication.Status.SCHEDULED):
            raise PublicationStateError(
                f"A {locked.get_status_display().lower()} publication cannot be scheduled.",
                code="not_schedulable",
                field="status",
            )
        if locked.topics.count() < MIN_TOPICS:
            raise InvalidPublicationError(
                [FieldProblem("topics", "required", "Choose at least one topic first.")]
            )
        locked.status = Publication.Status.SCHEDULED
        locked.publish_at = publish_at
        _save_quietly(locked, update_fields=["status", "publish_at", "updated_at"])
        record_version(locked, by=by, reason=f"Scheduled for {publish_at:%Y-%m-%d %H:%M %Z}")
    _refresh(publication, locked)
    logger.info("publication %s scheduled", publication.pk)
    return publication


def unschedule(publication: Publication, by: Actor | None) -> Publication:
    """Take a scheduled publication back to draft."""
    _require(by, PUBLISH_PERMISSION, "unschedule")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        if locked.status != Publication.Status.SCHEDULED:
            raise PublicationStateError(
                "Only a scheduled publication can be unscheduled.",
                code="not_scheduled",
                field="status",
            )
        locked.status = Publication.Status.DRAFT
        locked.publish_at = None
        _save_quietly(locked, update_fields=["status", "publish_at", "updated_at"])
        record_version(locked, by=by, reason="Unscheduled")
    _refresh(publication, locked)
    return publication


def archive(publication: Publication, by: Actor | None) -> Publication:
    """Archive: off the public archive and feeds, no longer editable. Archiving twice is a no-op."""
    _require(by, ARCHIVE_PERMISSION, "archive")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        if locked.status != Publication.Status.ARCHIVED:
            locked.status = Publication.Status.ARCHIVED
            locked.publish_at = None
            _save_quietly(locked, update_fields=["status", "publish_at", "updated_at"])
            record_version(locked, by=by, reason="Archived")
            logger.info("publication %s archived", publication.pk)
    _refresh(publication, locked)
    return publication


def publish_due(now: datetime | None = None) -> list[Dispatch]:
    """Publish every scheduled publication whose time has come, each exactly once.

    Safe with several workers at once: each publication is claimed with
    ``SELECT ... FOR UPDATE SKIP LOCKED`` in its own transaction and re-checked under the lock,
    so a row another worker holds is skipped and one it has published no longer matches.
    """
    now = now or timezone.now()
    dispatches = []
    for publication_id in Publication.objects.due(now).values_list("pk", flat=True):
        with transaction.atomic():
            claimed = (
                Publication.objects.due(now)
                .select_for_update(skip_locked=True)
                .filter(pk=publication_id)
                .first()
            )
            if claimed is None:
                continue
            reason = "Published on schedule"
            try:
                with transaction.atomic():
                    dispatches.append(_publish_locked(claimed, None, reason=reason))
            except PublishingError as error:
                # One bad publication must not hold up the others due this minute.
                logger.warning("scheduled publication %s not published: %s", claimed.pk, error.code)
    return dispatches


# --- Test sends ---------------------------------------------------------------------------------


def send_test(publication: Publication, by: Actor) -> str:
    """Email the current saved version to the acting user through Django's mail API.

    Returns the address used. Raises InvalidPublicationError when the user has no address.
    """
    address = getattr(by, "email", "")
    if not address:
        raise InvalidPublicationError(
            [FieldProblem("email", "required", "Your user account has no email address.")]
        )
    version = publication.history.order_by("-history_id").first() or publication
    template = rendering.render_email(version)
    name = by.get_full_name() if hasattr(by, "get_full_name") else ""
    html, text = template.personalize(
        name=name or getattr(by, "username", ""),
        preferences_url=f"{settings.SITE_URL}/",
        unsubscribe_url=f"{settings.SITE_URL}/",
    )
    message = EmailMultiAlternatives(
        subject=f"[Test] {template.subject}",
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address],
    )
    message.attach_alternative(html, "text/html")
    message.send()
    logger.info("test send of publication %s to user %s", publication.pk, getattr(by, "pk", None))
    return str(address)
