"""A publication's delivery statistics: ``GET /api/v1/publications/{id}/stats/``.

The numbers come from the delivery ledger, so the engine answers them: publishing never imports
channels (docs/architecture.md). The URL stays under the publication's own (config/api/urls.py
routes it), with the scope (publications:read), answer and documentation it has always had: the
number of the publication's dispatches, its deliveries counted by status (every status
present, zero when none) and their total; three queries (the publication, the counts, the
dispatches) whatever the number of deliveries.
"""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from channels.models import Delivery
from config.api.schema import document
from config.api.views import ApiViewMixin
from publishing.models import ApiScope, Dispatch, Publication

READ = ApiScope.PUBLICATIONS_READ.value

StatsSerializer = inline_serializer(
    "PublicationStats",
    {
        "dispatches": serializers.IntegerField(),
        "deliveries": serializers.DictField(child=serializers.IntegerField()),
        "total": serializers.IntegerField(),
    },
)


# No docstring: the browsable API would show it as the page's description, which this page
# never had (the action lived on the publications viewset until the engine took it over).
class PublicationStatsViewSet(ApiViewMixin, viewsets.GenericViewSet[Publication]):
    queryset = Publication.objects.all()
    required_scopes = {"stats": READ}

    @document(
        summary="Delivery statistics",
        description="Dispatches of this publication and its deliveries by status. "
        "Needs publications:read.",
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
        return Response(
            {
                "dispatches": Dispatch.objects.filter(publication=publication).count(),
                "deliveries": counts,
                "total": sum(counts.values()),
            }
        )
