"""The Dispatch admin, extended by the engine: progress by status and channel, and re-queueing.

publishing/admin.py registers Dispatch without knowing the engine (the dependency points from
channels to publishing); this module replaces that registration with a subclass whose change
page shows the dispatch's progress (refreshed while sending by polling a small JSON view, with
the rate and the time left) and lets a Publisher re-queue its failed, dead or uncertain
deliveries.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field
from django.core.exceptions import PermissionDenied
from django.db.models import Field
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from channels import services
from channels.engine import abtest, guardrails
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


#: The dispatch's fields that change while it sends, refreshed on its page with the counts.
LIVE_FIELDS = ("status", "planned_at", "finished_at")


def can_requeue(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(REQUEUE_PERMISSION))


def progress_context(dispatch: Dispatch) -> dict[str, Any]:
    """What templates/admin/channels/dispatch/_progress.html needs, on the dispatch's page and
    on its publication's page."""
    progress = dispatch_progress(dispatch)
    return {
        "progress": progress,
        "progress_dispatch": dispatch,
        "statuses": [str(s).capitalize() for s in STATUS_ORDER],
        "status_totals": [progress.by_status[s] for s in STATUS_ORDER],
        "progress_url": reverse("admin:publishing_dispatch_progress", args=[dispatch.pk]),
    }


class DispatchProgressAdmin(DispatchAdmin):
    change_form_template = "admin/channels/dispatch/progress.html"
    list_display = [*DispatchAdmin.list_display, "id"]

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:object_id>/progress.json",
                self.admin_site.admin_view(self.progress_json_view),
                name="publishing_dispatch_progress",
            ),
            path(
                "<int:object_id>/requeue/",
                self.admin_site.admin_view(require_POST(self.requeue_view)),
                name="publishing_dispatch_requeue",
            ),
            path(
                "<int:object_id>/resume/",
                self.admin_site.admin_view(require_POST(self.resume_view)),
                name="publishing_dispatch_resume",
            ),
            path(
                "<int:object_id>/cancel/",
                self.admin_site.admin_view(require_POST(self.cancel_view)),
                name="publishing_dispatch_cancel",
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
            context.update(
                progress_context(dispatch),
                ab_test=abtest.report(dispatch),
                can_requeue=can_requeue(request),
                requeue_url=reverse("admin:publishing_dispatch_requeue", args=[dispatch.pk]),
            )
        return super().change_view(request, object_id, form_url, context)

    def progress_json_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """The dispatch's progress as JSON, for the page that polls it while sending: one grouped
        query, never cached. Who may view the dispatch page may read it; others get 403."""
        dispatch = get_object_or_404(Dispatch, pk=object_id)
        if not self.has_view_permission(request, dispatch):
            raise PermissionDenied
        data = dispatch_progress(dispatch).as_json()
        # The page's own read-only fields, as the admin displays them (the editor's time zone).
        data["fields"] = {
            name: str(
                display_for_field(
                    getattr(dispatch, name),
                    cast("Field[Any, Any]", Dispatch._meta.get_field(name)),
                    self.get_empty_value_display(),
                )
            )
            for name in LIVE_FIELDS
        }
        response = JsonResponse(data)
        add_never_cache_headers(response)
        return response

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

    def resume_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """A Publisher resumes a dispatch a guardrail paused (decision 0085)."""
        dispatch = get_object_or_404(Dispatch, pk=object_id)
        if not self.has_view_permission(request, dispatch) or not can_requeue(request):
            raise PermissionDenied
        released = guardrails.resume(dispatch.pk, by=request.user)
        if released is None:
            messages.error(request, "This dispatch is not paused.")
        else:
            messages.success(request, f"Sending resumed: {released} held messages queued.")
        return HttpResponseRedirect(reverse("admin:publishing_dispatch_change", args=[dispatch.pk]))

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """A Publisher cancels a dispatch a guardrail paused: its held messages are never sent."""
        dispatch = get_object_or_404(Dispatch, pk=object_id)
        if not self.has_view_permission(request, dispatch) or not can_requeue(request):
            raise PermissionDenied
        cancelled = guardrails.cancel(dispatch.pk, by=request.user)
        if cancelled is None:
            messages.error(request, "This dispatch is not paused.")
        else:
            messages.success(request, f"Dispatch cancelled: {cancelled} held messages cancelled.")
        return HttpResponseRedirect(reverse("admin:publishing_dispatch_change", args=[dispatch.pk]))


admin.site.unregister(Dispatch)
admin.site.register(Dispatch, DispatchProgressAdmin)
