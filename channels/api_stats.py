"""A publication's delivery statistics: ``GET /api/v1/publications/{id}/stats/``.

The numbers come from the delivery ledger, so the engine answers them: publishing never imports
channels (docs/architecture.md). The URL stays under the publication's own (config/api/urls.py
routes it), with the scope (publications:read), answer and documentation it has always had: the
number of the publication's dispatches, its deliveries counted by status (every status
present, zero when none) and their total, then its engagement from the aggregates
(channels.analytics): a few queries whatever the number of deliveries and events.
"""

from __future__ import annotations

from dataclasses import asdict

from django.db.models import Count
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from channels import analytics
from channels.models import Delivery
from config.api.schema import document
from config.api.views import ApiViewMixin
from publishing.models import ApiScope, Dispatch, Publication

READ = ApiScope.PUBLICATIONS_READ.value
RATES = ("opened_human", "clicked_human", "complained", "unsubscribed_after")

FunnelSerializer = inline_serializer(
    "PublicationFunnel",
    {
        name: serializers.IntegerField()
        for name in (
            "targeted",
            "sent",
            "delivered",
            "bounced",
            "complained",
            "opened_human",
            "clicked_human",
            "unsubscribed_after",
            "opened_proxy",
            "human_opens",
            "human_clicks",
            "machine_opens",
            "machine_clicks",
        )
    },
)
LinkSerializer = inline_serializer(
    "PublicationLinkClicks",
    {
        "url": serializers.CharField(),
        "surface": serializers.CharField(),
        "position": serializers.IntegerField(),
        "version": serializers.IntegerField(help_text="The history id of the version sent."),
        "human": serializers.IntegerField(),
        "machine": serializers.IntegerField(),
    },
)
StatsSerializer = inline_serializer(
    "PublicationStats",
    {
        "dispatches": serializers.IntegerField(),
        "deliveries": serializers.DictField(child=serializers.IntegerField()),
        "total": serializers.IntegerField(),
        "funnel": FunnelSerializer,
        "rates": serializers.DictField(
            child=serializers.FloatField(allow_null=True),
            help_text="Opened and clicked by humans, complained and unsubscribed after it, as "
            "shares of delivered messages (null before any is delivered).",
        ),
        "links": serializers.ListField(child=LinkSerializer),
        "hours": serializers.DictField(
            child=serializers.ListField(child=serializers.IntegerField()),
            help_text="Per hour after the first send (72 values): opens_human, clicks_human, "
            "opens_proxy, machine.",
        ),
    },
)


# No docstring: the browsable API would show it as the page's description, which this page
# never had (the action lived on the publications viewset until the engine took it over).
class PublicationStatsViewSet(ApiViewMixin, viewsets.GenericViewSet[Publication]):
    queryset = Publication.objects.all()
    required_scopes = {"stats": READ}

    @document(
        summary="Delivery statistics",
        description="Dispatches of this publication, its deliveries by status, and its "
        "engagement (docs/analytics.md): the funnel (machines and proxy opens apart), rates, "
        "clicks per link and the first 72 hours. Needs publications:read.",
        responses={200: StatsSerializer},
    )
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        publication = self.get_object()
        counts = dict.fromkeys(Delivery.Status.values, 0)
        rows = (
            Delivery.objects.filter(dispatch__publication=publication)
            .values_list("status")
            .annotate(count=Count("pk"))
            .order_by()
        )
        for delivery_status, count in rows:
            counts[delivery_status] = count
        engagement = analytics.analytics(publication.pk)
        funnel = engagement.funnel
        return Response(
            {
                "dispatches": Dispatch.objects.filter(publication=publication).count(),
                "deliveries": counts,
                "total": sum(counts.values()),
                "funnel": asdict(funnel),
                "rates": {
                    name: funnel.rate(getattr(funnel, name))
                    for name in (
                        "opened_human",
                        "clicked_human",
                        "complained",
                        "unsubscribed_after",
                    )
                },
                "links": [
                    {
                        "url": link.url,
                        "surface": link.surface,
                        "position": link.index,
                        "version": link.version_id,
                        "human": link.human,
                        "machine": link.machine,
                    }
                    for link in engagement.links
                ],
                "hours": engagement.hours,
            }
        )
