"""The admin of event webhook endpoints (decision 0084): URL, event types, enabled flag,
the secret shown once and rotated, each endpoint's recent attempts (status, latency, what the
endpoint answered), and replay of one event or of every failed event since a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from channels import webhook_events
from channels.configuration import masked_secrets
from channels.exceptions import ChannelConfigurationError
from channels.models import EventAttempt, WebhookEndpoint
from config.errors import ProjectError
from events.models import Event, EventType

if TYPE_CHECKING:
    _ModelForm = forms.ModelForm[WebhookEndpoint]
    _ModelAdmin = admin.ModelAdmin[WebhookEndpoint]
else:
    # Django's classes are not subscriptable at runtime (no django_stubs_ext.monkeypatch).
    _ModelForm = forms.ModelForm
    _ModelAdmin = admin.ModelAdmin

#: Attempts listed on an endpoint's page, newest first.
RECENT_ATTEMPTS = 50


class WebhookEndpointForm(_ModelForm):
    url = forms.CharField(
        label="Endpoint URL",
        max_length=500,
        help_text="Where events are POSTed (https, a public address).",
    )
    event_types = forms.MultipleChoiceField(
        choices=[(value, f"{value}: {label}") for value, label in EventType.choices],
        widget=forms.CheckboxSelectMultiple,
    )
    is_enabled = forms.BooleanField(label="Enabled", required=False, initial=True)

    class Meta:
        model = WebhookEndpoint
        fields = ["description", "event_types", "include_machine_events", "owner"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["url"].initial = self.instance.url
            self.fields["is_enabled"].initial = self.instance.is_enabled

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        if cleaned is None or self.errors:
            return cleaned
        # The endpoint is saved here, so that the service's field errors show on the form.
        data = {
            "url": cleaned["url"],
            "event_types": cleaned["event_types"],
            "description": cleaned.get("description", ""),
            "include_machine_events": cleaned.get("include_machine_events", False),
            "is_enabled": cleaned.get("is_enabled", False),
            "owner_id": cleaned["owner"].pk if cleaned.get("owner") else None,
        }
        try:
            if self.instance.pk:
                changes = dict(data)
                if changes["url"] == self.instance.url:
                    del changes["url"]
                self.saved = webhook_events.update_endpoint(self.instance, **changes)
                self.new_secret = ""
            else:
                self.saved, self.new_secret = webhook_events.create_endpoint(
                    webhook_events.EndpointInput(**data)
                )
        except ChannelConfigurationError as error:
            for field, problems in error.field_errors().items():
                self.add_error(field if field in self.fields else None, problems)
        return cleaned

    def save(self, commit: bool = True) -> WebhookEndpoint:
        # The service saved the endpoint in clean(); there is nothing left to save.
        self.save_m2m = lambda: None  # type: ignore[method-assign]
        return self.saved


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_ModelAdmin):
    form = WebhookEndpointForm
    change_form_template = "admin/channels/webhookendpoint/change_form.html"
    list_display = ["endpoint_url", "enabled", "types", "failing_since", "last_success_at"]
    list_select_related = ["channel"]
    readonly_fields = ["secret", "disabled_at", "disabled_reason", "failing_since"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields: list[str] = ["url", "description", "event_types", "include_machine_events"]
        fields += ["is_enabled", "owner"]
        if obj is not None:
            fields += ["secret", "failing_since", "disabled_at", "disabled_reason"]
        return fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[WebhookEndpoint]:
        return super().get_queryset(request).select_related("channel", "owner")

    @admin.display(description="URL")
    def endpoint_url(self, endpoint: WebhookEndpoint) -> str:
        return endpoint.url

    @admin.display(description="Enabled", boolean=True)
    def enabled(self, endpoint: WebhookEndpoint) -> bool:
        return endpoint.is_enabled

    @admin.display(description="Event types")
    def types(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    @admin.display(description="Signing secret")
    def secret(self, endpoint: WebhookEndpoint) -> str:
        shown = masked_secrets(endpoint.channel).get("secret", "")
        until = webhook_events.previous_secret_until(endpoint)
        if until is not None:
            shown += f" (the previous one also signs until {until:%Y-%m-%d %H:%M} UTC)"
        return shown

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        secret = getattr(form, "new_secret", "")
        if secret:
            messages.warning(
                request,
                f"The endpoint's signing secret, shown this once: {secret}",
            )

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_events.delete_endpoint(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            webhook_events.delete_endpoint(endpoint)

    # --- The attempts, replay and rotation --------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        def post(view: Any) -> Any:
            return self.admin_site.admin_view(require_POST(view))

        own = [
            path("<int:object_id>/replay/", post(self.replay_view), name="events_replay"),
            path(
                "<int:object_id>/replay-failed/",
                post(self.replay_failed_view),
                name="events_replay_failed",
            ),
            path("<int:object_id>/rotate/", post(self.rotate_view), name="events_rotate"),
        ]
        return [*own, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        endpoint = self.get_object(request, object_id)
        if endpoint is not None:
            attempts = list(
                EventAttempt.objects.filter(endpoint=endpoint).order_by("-attempted_at", "-pk")[
                    :RECENT_ATTEMPTS
                ]
            )
            types = dict(
                Event.objects.filter(pk__in={a.event_id for a in attempts}).values_list(
                    "pk", "type"
                )
            )
            for attempt in attempts:
                attempt.event_type = types.get(attempt.event_id, "")  # type: ignore[attr-defined]
            context.update(
                attempts=attempts,
                can_change=self.has_change_permission(request, endpoint),
                replay_url=reverse("admin:events_replay", args=[endpoint.pk]),
                replay_failed_url=reverse("admin:events_replay_failed", args=[endpoint.pk]),
                rotate_url=reverse("admin:events_rotate", args=[endpoint.pk]),
                default_since=f"{timezone.now() - timedelta(days=1):%Y-%m-%dT%H:%M}",
            )
        return super().change_view(request, object_id, form_url, context)

    def _endpoint(self, request: HttpRequest, object_id: int) -> WebhookEndpoint:
        endpoint = get_object_or_404(
            WebhookEndpoint.objects.select_related("channel"), pk=object_id
        )
        if not self.has_change_permission(request, endpoint):
            raise PermissionDenied
        return endpoint

    def _back(self, endpoint: WebhookEndpoint) -> HttpResponse:
        url = reverse("admin:channels_webhookendpoint_change", args=[endpoint.pk])
        return HttpResponseRedirect(url)

    def replay_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        endpoint = self._endpoint(request, object_id)
        event_id = request.POST.get("event_id", "")
        try:
            webhook_events.replay_event(endpoint, event_id)
        except ProjectError as error:
            messages.error(request, str(error))
        else:
            messages.success(request, f"Event evt_{event_id.removeprefix('evt_')} queued again.")
        return self._back(endpoint)

    def replay_failed_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        endpoint = self._endpoint(request, object_id)
        since = _aware(request.POST.get("since", ""))
        if since is None:
            messages.error(request, "since: give a date and time (YYYY-MM-DD HH:MM, UTC).")
            return self._back(endpoint)
        count = webhook_events.replay_failed_since(endpoint, since)
        messages.success(
            request, f"{count} failed events since {since:%Y-%m-%d %H:%M} UTC queued again."
        )
        return self._back(endpoint)

    def rotate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        endpoint = self._endpoint(request, object_id)
        secret = webhook_events.rotate_secret(endpoint)
        messages.warning(
            request,
            f"New signing secret, shown this once: {secret}. The previous one also signs "
            "deliveries for the next 24 hours.",
        )
        return self._back(endpoint)


def _aware(text: str) -> datetime | None:
    value = parse_datetime(text.strip().replace(" ", "T")) if text.strip() else None
    if value is None:
        return None
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
