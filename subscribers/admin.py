"""The back office for subscribers: lists, unsubscribe and erase actions, import and export."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import URLPattern, path
from django.utils import timezone

from publishing.models import Topic
from subscribers import growth, services
from subscribers.exceptions import ImportFileError
from subscribers.exports import export_lines
from subscribers.models import ConsentEvent, Subscriber, Subscription, Suppression

if TYPE_CHECKING:
    SubscriptionInlineBase = admin.TabularInline[Subscription, Subscriber]
    SubscriberAdminBase = admin.ModelAdmin[Subscriber]
    ConsentEventAdminBase = admin.ModelAdmin[ConsentEvent]
    SuppressionAdminBase = admin.ModelAdmin[Suppression]
else:
    SubscriptionInlineBase = admin.TabularInline
    SubscriberAdminBase = ConsentEventAdminBase = SuppressionAdminBase = admin.ModelAdmin

#: Larger files are better imported with `manage.py import_subscribers` (no request timeout).
ADMIN_IMPORT_MAX_BYTES = 50 * 1024 * 1024


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV, UTF-8, with a header naming an email column.")
    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple
    )
    confirmed = forms.BooleanField(
        required=False, help_text="These people already consented: make them active."
    )
    consent_note = forms.CharField(
        required=False, max_length=500, help_text="Where and when they consented."
    )

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > ADMIN_IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                "file: at most 50 MB here; use manage.py import_subscribers for larger files."
            )
        return upload

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean() or {}
        if cleaned.get("confirmed") and not cleaned.get("consent_note", "").strip():
            self.add_error("consent_note", "Say where and when they consented.")
        return cleaned


class SubscriptionInline(SubscriptionInlineBase):
    model = Subscription
    extra = 0
    fields = ["topic", "frequency", "paused_until", "created_at"]
    readonly_fields = ["created_at"]


@admin.register(Subscriber)
class SubscriberAdmin(SubscriberAdminBase):
    list_display = ["email", "status", "locale", "source", "created_at", "confirmed_at"]
    list_filter = ["status", "locale", "source"]
    search_fields = ["=email"]
    show_full_result_count = False
    # Status changes go through the actions (services), which keep the suppression list and
    # the consent log in step; a free edit of the field would not.
    readonly_fields = [
        "status",
        "email_hash",
        "created_at",
        "updated_at",
        "confirmed_at",
        "unsubscribed_at",
        "source",
    ]
    inlines = [SubscriptionInline]
    actions = ["unsubscribe_selected", "erase_selected"]
    change_list_template = "subscribers/admin_change_list.html"

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "import/",
                self.admin_site.admin_view(self.import_view),
                name="subscribers_subscriber_import",
            ),
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="subscribers_subscriber_export",
            ),
            path(
                "growth/",
                self.admin_site.admin_view(self.growth_view),
                name="subscribers_subscriber_growth",
            ),
        ]
        return own + super().get_urls()

    def growth_view(self, request: HttpRequest) -> HttpResponse:
        """Joined and left by week, overall or for one topic, as a table and a chart (read
        from GrowthWeek: no scan of the subscribers)."""
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        topics = list(Topic.objects.order_by("name"))
        chosen = next((t for t in topics if t.slug == request.GET.get("topic")), None)
        rows = growth.weeks(topic=chosen, count=26)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Growth and churn: {chosen.name if chosen else 'all topics'}",
            "topics": topics,
            "chosen": chosen,
            "rows": rows,
            "chart": {
                "weeks": [row.week.isoformat() for row in rows],
                "joined": [row.joined for row in rows],
                "left": [row.left for row in rows],
            },
            "totals": (sum(r.joined for r in rows), sum(r.left for r in rows)),
        }
        return render(request, "subscribers/admin_growth.html", context)

    @admin.action(description="Unsubscribe the selected subscribers")
    def unsubscribe_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        origin = services.Origin(via="admin")
        changed = sum(1 for subscriber in queryset if services.unsubscribe(subscriber, origin))
        self.message_user(request, f"{changed} subscriber(s) unsubscribed.", messages.SUCCESS)

    @admin.action(
        description="Erase the selected subscribers (keeps only a hash)",
        permissions=["delete"],
    )
    def erase_selected(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        origin = services.Origin(via="admin")
        count = 0
        for subscriber in list(queryset):
            services.erase_subscriber(subscriber, origin)
            count += 1
        self.message_user(request, f"{count} subscriber(s) erased.", messages.SUCCESS)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        report = None
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            with tempfile.TemporaryDirectory() as folder:
                path_ = Path(folder) / "import.csv"
                with path_.open("wb") as handle:
                    for chunk in data["file"].chunks():
                        handle.write(chunk)
                try:
                    report = services.import_subscribers(
                        path_,
                        services.ImportOptions(
                            topics=[topic.slug for topic in data["topics"]],
                            confirmed=data["confirmed"],
                            consent_note=data["consent_note"],
                            source="admin-import",
                        ),
                    )
                except ImportFileError as exc:
                    form.add_error("file", exc.message)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import subscribers",
            "form": form,
            "report": report,
        }
        return render(
            request, "subscribers/admin_import.html", context, status=400 if form.errors else 200
        )

    def export_view(self, request: HttpRequest) -> StreamingHttpResponse | HttpResponse:
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        status = request.GET.get("status") or None
        response = StreamingHttpResponse(export_lines(status), content_type="text/csv")
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        response["Content-Disposition"] = f'attachment; filename="subscribers-{stamp}.csv"'
        return response


@admin.register(ConsentEvent)
class ConsentEventAdmin(ConsentEventAdminBase):
    """The consent log: read-only, as evidence must be."""

    list_display = ["created_at", "action", "subscriber", "form_version", "ip_address"]
    list_filter = ["action", "form_version"]
    search_fields = ["=email_hash"]
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Suppression)
class SuppressionAdmin(SuppressionAdminBase):
    list_display = ["email_hash", "reason", "note", "created_at"]
    list_filter = ["reason"]
    search_fields = ["=email_hash"]
    readonly_fields = ["email_hash", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Suppressions are added by unsubscribe, erasure, bounces and the commands, which hash.
        return False
