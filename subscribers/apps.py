from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class SubscribersConfig(AppConfig):
    name = "subscribers"
    verbose_name = "Subscribers"

    def ready(self) -> None:
        from subscribers.checks import check_subscriber_settings

        checks.register(check_subscriber_settings)
