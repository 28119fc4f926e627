"""Every write of the publishing app: authoring, versions, publishing, scheduling, archiving.

The admin, the management commands, the django-q2 tasks and the API call these functions and
nothing else to change publications, so the rules live here once. Each function validates its
input first (publishing.validation) and checks the actor's rights (publishing.access), raising a
PublishingError (publishing.exceptions) naming the field; nothing is written when it raises.

Versions: a service saves with simple-history's automatic records switched off and records
exactly one version at the end (publishing.history.record_version), with the acting user and a
reason, so one edit is one version however many rows and m2m signals it touched.

The checks, permission names, ``can_edit`` and ``version_number`` the admin and the API ask
before calling a service are importable from here too.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from events import recorder
from events.models import EventType
from publishing import rendering
from publishing.access import (
    ADD_PERMISSION,
    ARCHIVE_PERMISSION,
    DELETE_PERMISSION,
    PUBLISH_PERMISSION,
    Actor,
    access_publication_for_edit,
    acting_user,
    can_edit,
    require,
)
from publishing.exceptions import (
    FieldProblem,
    InvalidPublicationError,
    PublicationStateError,
    PublishingError,
)
from publishing.history import record_version, save_quietly, set_topics_quietly
from publishing.models import MIN_TOPICS, Dispatch, Publication, Topic
from publishing.translations import pinned_versions
from publishing.validation import (
    CHANGE_REASON_MAX_LENGTH,
    PublicationInput,
    check_publication_input,
    check_publish_at,
    check_reason,
)
from publishing.versions import version_number

logger = logging.getLogger(__name__)

__all__ = [
    "ARCHIVE_PERMISSION",
    "CHANGE_REASON_MAX_LENGTH",
    "PLAN_DISPATCH_TASK",
    "PUBLISH_PERMISSION",
    "PublicationInput",
    "archive",
    "can_edit",
    "check_publication_input",
    "check_publish_at",
    "create_publication",
    "delete_draft",
    "publish",
    "publish_due",
    "resend",
    "restore_version",
    "schedule",
    "send_test",
    "unschedule",
    "update_publication",
    "version_number",
]

PLAN_DISPATCH_TASK = "channels.tasks.plan_dispatch"
EDITABLE_FIELDS = (
    "title",
    "slug",
    "summary",
    "body",
    "language",
    "ab_share",
    "ab_wait_hours",
    "ab_metric",
    "ab_min_sample",
)


# --- Authoring and versions --------------------------------------------------------------------


def create_publication(
    data: PublicationInput, *, by: Actor | None, reason: str = ""
) -> Publication:
    """Create a draft and its first version.

    Raises InvalidPublicationError (naming the field) or PublishingPermissionError.
    """
    require(by, ADD_PERMISSION, "create publications")
    topics = check_publication_input(data)
    reason = check_reason(reason) or "Created"
    with transaction.atomic():
        publication = Publication(
            title=data.title,
            slug=data.slug,
            summary=data.summary,
            body=data.body,
            language=data.language,
            subjects=list(data.subjects),
            ab_share=data.ab_share,
            ab_wait_hours=data.ab_wait_hours,
            ab_metric=data.ab_metric,
            ab_min_sample=data.ab_min_sample,
            author=acting_user(by),
        )
        try:
            save_quietly(publication)
        except IntegrityError:
            # Lost a race for the slug after the check.
            raise InvalidPublicationError(
                [FieldProblem("slug", "slug_taken", f"Another publication uses {data.slug!r}.")]
            ) from None
        set_topics_quietly(publication, topics)
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
        reason = check_reason(reason) or "Edited"
        for name in EDITABLE_FIELDS:
            setattr(locked, name, getattr(data, name))
        locked.subjects = list(data.subjects)
        try:
            with transaction.atomic():
                save_quietly(locked)
        except IntegrityError:
            raise InvalidPublicationError(
                [FieldProblem("slug", "slug_taken", f"Another publication uses {data.slug!r}.")]
            ) from None
        set_topics_quietly(locked, topics)
        version = record_version(locked, by=by, reason=reason)
        recorder.record(
            EventType.PUBLICATION_UPDATED,
            {
                "publication_id": locked.pk,
                "slug": locked.slug,
                "status": locked.status,
                "version": version_number(version),
            },
        )
    _refresh(publication, locked)
    logger.info("publication %s edited", publication.pk)
    return publication


def delete_draft(publication: Publication, *, by: Actor | None) -> None:
    """Delete a draft that was never sent. Its versions stay in the history table.

    Raises PublishingPermissionError, or PublicationStateError when it is not a draft.
    """
    require(by, DELETE_PERMISSION, "delete publications")
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

    History is never rewritten: the restored state is appended. Topics deleted since, and
    topics archived since that the publication no longer has, are left out; when none remain
    the restore fails on the topics field. Returns the new version.
    """
    if version.id != publication.pk:
        raise InvalidPublicationError(
            [FieldProblem("version", "invalid", "That version belongs to another publication.")]
        )
    topic_ids = list(version.topics.values_list("topic_id", flat=True))
    # Archived topics come back only when the publication still has them.
    topics = list(
        Topic.objects.filter(pk__in=topic_ids)
        .filter(Q(archived_at__isnull=True) | Q(publications=publication))
        .distinct()
    )
    number = version_number(version)
    data = PublicationInput(
        title=version.title,
        slug=publication.slug,
        summary=version.summary,
        body=version.body,
        topics=topics,
        language=version.language,
        **ab_test_input(version),
    )
    update_publication(publication, data, by=by, reason=f"Restored version {number}")
    return publication.history.order_by("-history_id").first()


def ab_test_input(publication: Any) -> dict[str, Any]:
    """The A/B fields of a publication or a version, as PublicationInput takes them: what an
    edit that does not mention them keeps."""
    return {
        "subjects": list(publication.subjects or []),
        "ab_share": publication.ab_share,
        "ab_wait_hours": publication.ab_wait_hours,
        "ab_metric": publication.ab_metric,
        "ab_min_sample": publication.ab_min_sample,
    }


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
    save_quietly(publication, update_fields=["status", "published_at", "updated_at"])
    version = record_version(publication, by=by, reason=reason)
    dispatch = Dispatch.objects.create(
        publication=publication,
        version=version,
        kind=Dispatch.Kind.PUBLISH,
        created_by=acting_user(by),
        # Translations are pinned with the version, under the same row lock (decision 0082).
        translation_versions=pinned_versions(publication),
    )
    _enqueue_plan(dispatch)
    recorder.record(
        EventType.PUBLICATION_PUBLISHED,
        {
            "publication_id": publication.pk,
            "slug": publication.slug,
            "version": dispatch.version_number,
            "dispatch_id": dispatch.pk,
            "topics": sorted(publication.topics.values_list("slug", flat=True)),
        },
    )
    logger.info(
        "publication %s published as version %s (history row %s), dispatch %s",
        publication.pk,
        dispatch.version_number,
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
    require(by, PUBLISH_PERMISSION, "publish")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        dispatch = _publish_locked(locked, by, reason="Published")
    _refresh(publication, locked)
    return dispatch


def resend(publication: Publication, by: Actor | None) -> Dispatch:
    """Deliberately send a published publication again, as its current version: a new dispatch."""
    require(by, PUBLISH_PERMISSION, "resend")
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
            created_by=acting_user(by),
            translation_versions=pinned_versions(locked),
        )
        _enqueue_plan(dispatch)
    logger.info("publication %s resent by dispatch %s", publication.pk, dispatch.pk)
    return dispatch


def schedule(
    publication: Publication, publish_at: datetime | None, by: Actor | None
) -> Publication:
    """Schedule a draft (or reschedule) to publish at ``publish_at``, a time in the future."""
    require(by, PUBLISH_PERMISSION, "schedule")
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
        save_quietly(locked, update_fields=["status", "publish_at", "updated_at"])
        record_version(locked, by=by, reason=f"Scheduled for {publish_at:%Y-%m-%d %H:%M %Z}")
    _refresh(publication, locked)
    logger.info("publication %s scheduled", publication.pk)
    return publication


def unschedule(publication: Publication, by: Actor | None) -> Publication:
    """Take a scheduled publication back to draft."""
    require(by, PUBLISH_PERMISSION, "unschedule")
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
        save_quietly(locked, update_fields=["status", "publish_at", "updated_at"])
        record_version(locked, by=by, reason="Unscheduled")
    _refresh(publication, locked)
    return publication


def archive(publication: Publication, by: Actor | None) -> Publication:
    """Archive: off the public archive and feeds, no longer editable. Archiving twice is a no-op."""
    require(by, ARCHIVE_PERMISSION, "archive")
    with transaction.atomic():
        locked = Publication.objects.select_for_update().get(pk=publication.pk)
        if locked.status != Publication.Status.ARCHIVED:
            locked.status = Publication.Status.ARCHIVED
            locked.publish_at = None
            save_quietly(locked, update_fields=["status", "publish_at", "updated_at"])
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
