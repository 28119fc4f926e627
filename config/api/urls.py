"""Routes of the REST API under /api/v1/ (the public sign-up lives in subscribers.urls)."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path
from rest_framework.routers import SimpleRouter

from channels.api import ChannelViewSet, DeliveryViewSet, DispatchViewSet
from channels.api_stats import PublicationStatsViewSet
from channels.api_webhooks import WebhookEndpointViewSet
from publishing.api import PublicationViewSet, TopicViewSet
from publishing.api_translations import PublicationTranslationViewSet
from subscribers.api import SubscriberViewSet
from subscribers.api_stats import SubscriberGrowthView

router = SimpleRouter()
router.register("topics", TopicViewSet, basename="topic")
router.register("publications", PublicationViewSet, basename="publication")
router.register("subscribers", SubscriberViewSet, basename="subscriber")
router.register("channels", ChannelViewSet, basename="channel")
router.register("dispatches", DispatchViewSet, basename="dispatch")
router.register("deliveries", DeliveryViewSet, basename="delivery")
router.register("webhook-endpoints", WebhookEndpointViewSet, basename="webhook-endpoint")

# A publication's stats read the delivery ledger, so the engine answers them, at the same URL
# under the publication (publishing never imports channels). A router of their own keeps the URL
# name (publication-stats): one router takes each basename once.
stats_router = SimpleRouter()
stats_router.register("publications", PublicationStatsViewSet, basename="publication")
# A publication's translations (decision 0082), under the publication, the same way.
translations_router = SimpleRouter()
translations_router.register("publications", PublicationTranslationViewSet, basename="publication")

urlpatterns: list[URLPattern | URLResolver] = [
    path("", include(router.urls)),
    path("", include(stats_router.urls)),
    path("", include(translations_router.urls)),
    path("stats/subscribers/", SubscriberGrowthView.as_view(), name="subscriber-growth"),
]
