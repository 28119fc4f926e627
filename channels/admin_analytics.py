"""The analytics pages of the admin: per publication, the funnel (machines and proxy opens
apart), clicks per link and the first 72 hours as a chart (Chart.js from the static files).

Everything is read from the aggregates the classifier keeps (channels.analytics), so a page
costs a handful of queries however many events there are. Read-only: whoever may view
publications may view their analytics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from channels import analytics
from channels.engine import abtest
from channels.models import EngagementCounter, PublicationAnalytics
from publishing.models import Dispatch

if TYPE_CHECKING:
    AnalyticsAdminBase = admin.ModelAdmin[PublicationAnalytics]
else:  # ModelAdmin is not subscriptable at run time
    AnalyticsAdminBase = admin.ModelAdmin

VIEW_PERMISSION = "publishing.view_publication"


def _ab_test(publication_id: int) -> abtest.TestReport | None:
    """The A/B subject test of the publication's first send, if it had one (decision 0079)."""
    dispatch = Dispatch.objects.filter(
        publication_id=publication_id, ab_decide_at__isnull=False
    ).first()
    return abtest.report(dispatch) if dispatch is not None else None


def _counter(metric: str) -> Subquery:
    return Subquery(
        EngagementCounter.objects.filter(
            publication_id=OuterRef("pk"), metric=metric, key=""
        ).values("count")[:1]
    )


@admin.register(PublicationAnalytics)
class PublicationAnalyticsAdmin(AnalyticsAdminBase):
    list_display = ["title", "status", "published_at", "opened_by_humans", "clicked_by_humans"]
    list_filter = ["status"]
    search_fields = ["title", "slug"]
    ordering = ["-published_at", "-pk"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[PublicationAnalytics]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                opened_human=_counter("opened_human"), clicked_human=_counter("clicked_human")
            )
        )

    @admin.display(description="opened by humans", ordering="opened_human")
    def opened_by_humans(self, publication: Any) -> int:
        return int(publication.opened_human or 0)

    @admin.display(description="clicked by humans", ordering="clicked_human")
    def clicked_by_humans(self, publication: Any) -> int:
        return int(publication.clicked_human or 0)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.is_active and request.user.has_perm(VIEW_PERMISSION))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The publication's analytics page (not a form: nothing here can be changed)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        publication = get_object_or_404(PublicationAnalytics, pk=object_id)
        data = analytics.analytics(publication.pk)
        funnel = data.funnel
        steps = [
            ("Targeted", funnel.targeted, None),
            ("Sent", funnel.sent, None),
            ("Delivered", funnel.delivered, None),
            ("Opened by people", funnel.opened_human, funnel.rate(funnel.opened_human)),
            ("Clicked by people", funnel.clicked_human, funnel.rate(funnel.clicked_human)),
        ]
        apart = [
            ("Bounced", funnel.bounced, funnel.rate(funnel.bounced)),
            ("Complained", funnel.complained, funnel.rate(funnel.complained)),
            ("Unsubscribed after it", funnel.unsubscribed_after, None),
            ("Opened (proxy)", funnel.opened_proxy, funnel.rate(funnel.opened_proxy)),
            ("Machine opens", funnel.machine_opens, None),
            ("Machine clicks", funnel.machine_clicks, None),
        ]
        widest = max(funnel.targeted, 1)
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "title": f"Analytics: {publication.title}",
            "opts": self.model._meta,
            "original": publication,
            "publication": publication,
            "steps": [
                (label, count, share, round(100 * count / widest, 1))
                for label, count, share in steps
            ],
            "apart": apart,
            "links": data.links,
            "chart": {"hours": list(range(analytics.HOURS)), **data.hours},
            "has_events": any(sum(values) for values in data.hours.values()),
            "ab_test": _ab_test(publication.pk),
        }
        return TemplateResponse(request, "admin/channels/publication_analytics.html", context)
