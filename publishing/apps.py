from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PublishingConfig(AppConfig):
    name = "publishing"
    verbose_name = "Publishing"

    def ready(self) -> None:
        from publishing.roles import assign_role_permissions

        # No sender: run after every app's migrations, so late apps' permissions are included.
        post_migrate.connect(assign_role_permissions, dispatch_uid="publishing.roles")
