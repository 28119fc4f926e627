"""The Dispatch admin, extended by the engine: progress by status and channel, and re-queueing.

publishing/admin.py registers Dispatch without knowing the engine (the dependency points from
channels to publishing); this module replaces that registration with a subclass whose change
page shows the dispatch's progress and lets a Publisher re-queue its failed, dead or uncertain
deliveries.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_POST

from channels import services
from channels.models import Delivery
from channels.progress import STATUS_ORDER, dispatch_progress
from publishing.admin import DispatchAdmin
from publishing.models import Dispatch

#: Re-queueing a dispatch's deliveries sends messages again: a Publisher's right.
REQUEUE_PERMISSION = "publishing.publish_publication"
REQUEUE_CHOICES = {
    "failed": [Delivery.Status.FAILED],
    "dead": [Delivery.Status.DEAD],
    "both": [Delivery.Status.FAILED, Delivery.Status.DEAD],
    "uncertain": [Delivery.Status.UNCERTAIN],
}


def can_requeue(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(REQUEUE_PERMISSION))


class DispatchProgressAdmin(DispatchAdmin):
    change_form_template = "admin/channels/dispatch/progress.html"
    list_display = [*DispatchAdmin.list_display, "id"]

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:object_id>/requeue/",
                self.admin_site.admin_view(require_POST(self.requeue_view)),
                name="publishing_dispatch_requeue",
            ),
        ]
        return [*own, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        dispatch = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if dispatch is not None:
            progress = dispatch_progress(dispatch)
            context.update(
                progress=progress,
                statuses=[str(s).capitalize() for s in STATUS_ORDER],
                status_totals=[progress.by_status[s] for s in STATUS_ORDER],
                can_requeue=can_requeue(request),
                requeue_url=reverse("admin:publishing_dispatch_requeue", args=[dispatch.pk]),
            )
        return super().change_view(request, object_id, form_url, context)

    def requeue_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        dispatch = get_object_or_404(Dispatch, pk=object_id)
        if not self.has_view_permission(request, dispatch) or not can_requeue(request):
            raise PermissionDenied
        which = request.POST.get("statuses", "both")
        if which not in REQUEUE_CHOICES:
            messages.error(request, f"statuses must be one of {', '.join(REQUEUE_CHOICES)}.")
        else:
            count = services.requeue_matching(
                statuses=REQUEUE_CHOICES[which], dispatch_id=dispatch.pk
            )
            messages.success(request, f"{count} deliveries re-queued.")
        return HttpResponseRedirect(reverse("admin:publishing_dispatch_change", args=[dispatch.pk]))


admin.site.unregister(Dispatch)
admin.site.register(Dispatch, DispatchProgressAdmin)
