"""Who may do what to a publication: the permission each action needs, checked for the acting
user; ``by=None`` is the system itself (the scheduler, operators' management commands)."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.models import User as AuthUser

from publishing.exceptions import PublicationStateError, PublishingPermissionError
from publishing.models import Publication

Actor = AuthUser | AnonymousUser
PUBLISH_PERMISSION = "publishing.publish_publication"
ARCHIVE_PERMISSION = "publishing.archive_publication"
CHANGE_PERMISSION = "publishing.change_publication"
ADD_PERMISSION = "publishing.add_publication"
DELETE_PERMISSION = "publishing.delete_publication"


def acting_user(by: Actor | None) -> AuthUser | None:
    """The user to record as author or creator: None for the system and anonymous actors."""
    return by if isinstance(by, AuthUser) else None


def has_perm(by: Actor | None, permission: str) -> bool:
    # ``by=None`` is the system itself: the scheduler and operators' management commands.
    return by is None or bool(by.has_perm(permission))


def require(by: Actor | None, permission: str, action: str) -> None:
    """Raise PublishingPermissionError ("You may not <action>.") unless ``by`` holds it."""
    if not has_perm(by, permission):
        raise PublishingPermissionError(f"You may not {action}.", code="permission_denied")


def can_edit(publication: Publication, by: Actor | None) -> bool:
    """Editors change drafts; changing a scheduled or published one needs the publish right."""
    if publication.status == Publication.Status.ARCHIVED:
        return False
    if not has_perm(by, CHANGE_PERMISSION):
        return False
    return publication.status == Publication.Status.DRAFT or has_perm(by, PUBLISH_PERMISSION)


def access_publication_for_edit(publication: Publication, by: Actor | None) -> Publication:
    """The publication, when ``by`` may change it now; else PublicationStateError (archived)
    or PublishingPermissionError."""
    if publication.status == Publication.Status.ARCHIVED:
        raise PublicationStateError(
            "An archived publication cannot be changed.", code="archived", field="status"
        )
    require(by, CHANGE_PERMISSION, "change publications")
    if not can_edit(publication, by):
        raise PublishingPermissionError(
            f"Only a publisher may change a {publication.get_status_display().lower()} "
            "publication.",
        )
    return publication
