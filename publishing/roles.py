"""The editorial roles, as Django groups, and the permissions each one carries.

The groups are created by a migration (0002); their permissions are (re)assigned after every
``migrate`` by a post_migrate handler, because permissions of other apps (channels, API keys)
only exist once those apps have migrated, in whatever order that happens.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

logger = logging.getLogger(__name__)

EDITOR = "Editor"
PUBLISHER = "Publisher"
ADMINISTRATOR = "Administrator"
ROLES = (EDITOR, PUBLISHER, ADMINISTRATOR)

EDITOR_PERMISSIONS = (
    "publishing.add_publication",
    "publishing.change_publication",
    "publishing.view_publication",
    "publishing.view_topic",
    "publishing.view_dispatch",
)
PUBLISHER_PERMISSIONS = (
    *EDITOR_PERMISSIONS,
    "publishing.publish_publication",
    "publishing.archive_publication",
    "publishing.add_topic",
    "publishing.change_topic",
    # The ledger, read-only, with each recipient's address: who a dispatch reached.
    "channels.view_delivery",
)


def _permissions(names: tuple[str, ...]) -> list[Permission]:
    query = Q()
    for name in names:
        app_label, codename = name.split(".", 1)
        query |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.filter(query))


def assign_role_permissions(**kwargs: Any) -> None:
    """Give each role its permissions; the Administrator gets every permission there is.

    Idempotent; connected to post_migrate, so it runs after each app's migrations.
    """
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ROLES}
    groups[EDITOR].permissions.set(_permissions(EDITOR_PERMISSIONS))
    groups[PUBLISHER].permissions.set(_permissions(PUBLISHER_PERMISSIONS))
    groups[ADMINISTRATOR].permissions.set(Permission.objects.all())
