"""Subscriber growth and churn by week: ``GET /api/v1/stats/subscribers/`` (subscribers:read).

Read from ``GrowthWeek`` (subscribers.growth), kept by an hourly task: one query whatever the
number of subscribers.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.schema import document
from config.api.views import ApiViewMixin
from publishing.models import ApiScope, Topic
from subscribers import growth

MAX_WEEKS = 104

WeekSerializer = inline_serializer(
    "SubscriberWeek",
    {
        "week": serializers.DateField(help_text="The Monday the week starts on."),
        "joined": serializers.IntegerField(),
        "left": serializers.IntegerField(),
        "net": serializers.IntegerField(),
    },
)
GrowthSerializer = inline_serializer(
    "SubscriberGrowth",
    {
        "topic": serializers.CharField(allow_null=True),
        "weeks": serializers.ListField(child=WeekSerializer),
    },
)


class GrowthQuerySerializer(serializers.Serializer[dict[str, object]]):
    topic = serializers.SlugField(required=False, max_length=100)
    weeks = serializers.IntegerField(required=False, min_value=1, max_value=MAX_WEEKS, default=12)


# No docstring: the browsable API would show it as the page's description.
class SubscriberGrowthView(ApiViewMixin, APIView):
    required_scopes = {"get": ApiScope.SUBSCRIBERS_READ.value}

    @document(
        summary="Subscriber growth and churn by week",
        description="Subscribers who joined (confirmed) and left (unsubscribed) each week, "
        "Monday to Sunday in the site's time zone, oldest first, every week present; overall, "
        "or for one topic (`topic`, a slug). `weeks`: how many, 1 to 104 (default 12). Counted "
        "every hour (docs/analytics.md). Needs subscribers:read.",
        responses={200: GrowthSerializer},
        parameters=[
            OpenApiParameter("topic", str, description="A topic's slug; none: overall."),
            OpenApiParameter("weeks", int, description="Weeks to return, 1 to 104 (12)."),
        ],
    )
    def get(self, request: Request) -> Response:
        query = GrowthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        slug = query.validated_data.get("topic")
        topic = None
        if slug:
            topic = Topic.objects.filter(slug=slug).first()
            if topic is None:
                raise serializers.ValidationError({"topic": [f"Unknown topic: {slug}."]})
        rows = growth.weeks(topic=topic, count=int(query.validated_data["weeks"]))
        return Response(
            {
                "topic": slug or None,
                "weeks": [
                    {"week": row.week, "joined": row.joined, "left": row.left, "net": row.net}
                    for row in rows
                ],
            }
        )
