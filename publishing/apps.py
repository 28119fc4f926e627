from __future__ import annotations

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_delete, post_migrate, post_save


class PublishingConfig(AppConfig):
    name = "publishing"
    verbose_name = "Publishing"

    def ready(self) -> None:
        from publishing.roles import assign_role_permissions

        # No sender: run after every app's migrations, so late apps' permissions are included.
        post_migrate.connect(assign_role_permissions, dispatch_uid="publishing.roles")

        from publishing.api_keys import forget_key_snapshot, forget_owner_snapshots
        from publishing.models import ApiKey

        # A key's cached snapshot is stale once the key or its owner changes (decision 0054).
        post_save.connect(forget_key_snapshot, sender=ApiKey, dispatch_uid="api-key-saved")
        post_delete.connect(forget_key_snapshot, sender=ApiKey, dispatch_uid="api-key-deleted")
        post_save.connect(
            forget_owner_snapshots, sender=settings.AUTH_USER_MODEL, dispatch_uid="api-key-owner"
        )
