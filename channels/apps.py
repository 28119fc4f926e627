from __future__ import annotations

from django.apps import AppConfig


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels and delivery"

    def ready(self) -> None:
        from channels import checks  # noqa: F401 - registers the queue-timeout checks
        from channels.services import forget_recipient
        from subscribers.signals import subscriber_erased

        subscriber_erased.connect(forget_recipient, dispatch_uid="channels.forget_recipient")

        from channels.digests import forget_digests

        subscriber_erased.connect(forget_digests, dispatch_uid="channels.forget_digests")

        from channels.tracking import forget_engagement

        subscriber_erased.connect(forget_engagement, dispatch_uid="channels.forget_engagement")

        from channels.webhook_events import LISTENER
        from events import recorder

        # Recorded events become deliveries to the endpoints that want them (decision 0084).
        recorder.connect(LISTENER)
