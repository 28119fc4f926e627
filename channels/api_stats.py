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
from channels.engine import abtest
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
AbVariantSerializer = inline_serializer(
    "PublicationAbVariant",
    {
        "subject": serializers.CharField(),
        "targeted": serializers.IntegerField(),
        "delivered": serializers.IntegerField(),
        "successes": serializers.IntegerField(help_text="People who opened or clicked (metric)."),
        "rate": serializers.FloatField(allow_null=True, help_text="Percent of delivered."),
        "ci_low": serializers.FloatField(help_text="95% Wilson interval, percent."),
        "ci_high": serializers.FloatField(),
    },
)
AbTestSerializer = inline_serializer(
    "PublicationAbTest",
    {
        "dispatch": serializers.IntegerField(),
        "method": serializers.CharField(),
        "metric": serializers.CharField(),
        "min_sample": serializers.IntegerField(),
        "decide_at": serializers.DateTimeField(allow_null=True),
        "decided_at": serializers.DateTimeField(allow_null=True),
        "winner": serializers.IntegerField(
            allow_null=True, help_text="The winning subject's position, from 1."
        ),
        "reason": serializers.CharField(),
        "p_value": serializers.FloatField(allow_null=True),
        "variants": serializers.ListField(child=AbVariantSerializer),
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
        "ab_tests": serializers.ListField(
            child=AbTestSerializer,
            help_text="The A/B subject tests of the publication's dispatches (decision 0079): "
            "each subject's rate with its 95% interval, the method and the decision.",
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
                "ab_tests": _ab_tests(publication),
            }
        )


def _ab_tests(publication: Publication) -> list[dict[str, object]]:
    tests = []
    for dispatch in Dispatch.objects.filter(
        publication=publication, ab_decide_at__isnull=False
    ).order_by("pk"):
        test = abtest.report(dispatch)
        if test is None:
            continue
        tests.append(
            {
                "dispatch": dispatch.pk,
                "method": test.method,
                "metric": test.metric,
                "min_sample": test.min_sample,
                "decide_at": test.decide_at,
                "decided_at": test.decided_at,
                "winner": test.winner + 1 if test.winner is not None else None,
                "reason": test.reason,
                "p_value": test.p_value,
                "variants": [
                    {
                        "subject": row.subject,
                        "targeted": row.targeted,
                        "delivered": row.delivered,
                        "successes": row.successes,
                        "rate": row.rate,
                        "ci_low": row.low,
                        "ci_high": row.high,
                    }
                    for row in test.variants
                ],
            }
        )
    return tests
