"""Channel admin: a form built from each backend's schema, secrets write-only, state at a glance.

The configuration fields of a channel come from its backend's ``config_form`` (prefixed
``config_``); validation and storage go through channels.configuration, so the admin shows the
same field-level errors any other writer gets. A new channel starts by choosing its kind.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.text import Truncator, capfirst

from channels.admin_doctor import doctor_page
from channels.backends import BackendError, OutcomeStatus, registry
from channels.configuration import (
    ChannelConfigurationError,
    check_channel_config,
    kind_choices,
    mask_secret,
    masked_secrets,
    save_channel,
    send_test_message,
    stored_secrets_or_none,
)
from channels.event_models import EVENT_WEBHOOK_KIND
from channels.models import Channel, Delivery

if TYPE_CHECKING:
    _ModelForm = forms.ModelForm[Channel]
    _ModelAdmin = admin.ModelAdmin[Channel]
else:
    # Django's classes are not subscriptable at runtime (no django_stubs_ext.monkeypatch).
    _ModelForm = forms.ModelForm
    _ModelAdmin = admin.ModelAdmin

CONFIG_PREFIX = "config_"
_STATE_FIELDS = (
    "disabled_reason",
    "disabled_at",
    "circuit_state",
    "circuit_opened_at",
    "consecutive_failures",
    "last_error",
    "last_error_at",
    "created_at",
    "updated_at",
)


class ChannelAdminForm(_ModelForm):
    """The model's own fields; subclasses made by ``channel_form`` add one kind's settings."""

    kind_name: ClassVar[str] = ""

    class Meta:
        model = Channel
        fields = [
            "name",
            "is_enabled",
            "topics",
            "rate_limit_per_second",
            "batch_size",
            "uncertain_policy",
            "tracking",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.config_data: dict[str, Any] = {}
        if self.kind_name not in registry:
            return
        backend_class = registry[self.kind_name]
        stored = stored_secrets_or_none(self.instance)
        for name in config_field_names(self.kind_name):
            field = self.fields[CONFIG_PREFIX + name]
            if name in backend_class.secret_fields:
                if stored.get(name):
                    field.help_text = (
                        f"Stored: {mask_secret(stored[name])}. Leave empty to keep it. "
                        f"{field.help_text}"
                    )
            elif self.instance.pk and name in self.instance.config:
                self.initial[CONFIG_PREFIX + name] = self.instance.config[name]

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        if self.kind_name not in registry:
            # A kind whose module was removed: the channel can be viewed and deleted only.
            raise forms.ValidationError(f"No backend of kind {self.kind_name!r} is installed.")
        names = config_field_names(self.kind_name)
        if any(CONFIG_PREFIX + name in self.errors for name in names):
            # A field already refused its value: the schema would only repeat it.
            return cleaned
        self.config_data = {name: cleaned.get(CONFIG_PREFIX + name) for name in names}
        try:
            check_channel_config(
                self.kind_name,
                self.config_data,
                current_secrets=stored_secrets_or_none(self.instance),
                batch_size=cleaned.get("batch_size"),
                rate_limit_per_second=cleaned.get("rate_limit_per_second"),
            )
        except ChannelConfigurationError as exc:
            for field, errors in exc.errors.items():
                target: str | None = field if field in self.fields else CONFIG_PREFIX + field
                if target not in self.fields:
                    target = None
                for error in errors:
                    self.add_error(target, error)
        return cleaned


def config_field_names(kind: str) -> list[str]:
    backend_class = registry.get(kind)
    return list(backend_class.config_form.base_fields) if backend_class else []


def channel_form(kind: str) -> type[ChannelAdminForm]:
    """A ChannelAdminForm class with the settings of ``kind`` as ``config_<name>`` fields."""
    attrs: dict[str, Any] = {"kind_name": kind, "__module__": __name__}
    if kind not in registry:
        return type(f"ChannelAdminForm_{kind}", (ChannelAdminForm,), attrs)
    backend_class = registry[kind]
    for name, field in backend_class.config_form.base_fields.items():
        field = copy.deepcopy(field)
        # Labelled as in the backend's form, not after the prefixed name.
        field.label = field.label or capfirst(name.replace("_", " "))
        if name in backend_class.secret_fields:
            # Write-only: never rendered back, not even after a failed submit.
            field.widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
            # Requiredness is the schema's call: an empty value keeps the stored secret.
            field.required = False
        attrs[CONFIG_PREFIX + name] = field
    return type(f"ChannelAdminForm_{kind}", (ChannelAdminForm,), attrs)


@admin.register(Channel)
class ChannelAdmin(_ModelAdmin):
    list_display = [
        "name",
        "kind",
        "is_enabled",
        "disabled_because",
        "circuit",
        "short_last_error",
        "sends_last_hour",
    ]
    list_filter = ["kind", "is_enabled", "circuit_state"]
    search_fields = ["name"]
    filter_horizontal = ["topics"]
    actions = ["send_test_message_action"]

    def get_urls(self) -> list[URLPattern]:
        doctor = path(
            "doctor/",
            self.admin_site.admin_view(lambda request: doctor_page(self, request)),
            name="channels_channel_doctor",
        )
        return [doctor, *super().get_urls()]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Channel]:
        since = timezone.now() - timedelta(hours=1)
        # A correlated subquery: one SQL statement for the whole page, served by the
        # (channel, status) index, instead of a count per row.
        recent = (
            Delivery.objects.filter(
                channel=OuterRef("pk"), status=Delivery.Status.SENT, sent_at__gte=since
            )
            .order_by()
            .values("channel")
            .annotate(count=Count("pk"))
            .values("count")
        )
        return (
            super()
            .get_queryset(request)
            # Event endpoints' channels have their own admin (Event webhook endpoints).
            .exclude(kind=EVENT_WEBHOOK_KIND)
            .annotate(
                sends_last_hour=Coalesce(Subquery(recent, output_field=IntegerField()), Value(0))
            )
        )

    # --- List columns -----------------------------------------------------------------------
    @admin.display(description="Circuit", ordering="circuit_state")
    def circuit(self, channel: Channel) -> str:
        state = channel.get_circuit_state_display()
        if channel.circuit_state != Channel.CircuitState.CLOSED and channel.circuit_opened_at:
            return f"{state} since {channel.circuit_opened_at:%Y-%m-%d %H:%M} UTC"
        return state

    @admin.display(description="Disabled because")
    def disabled_because(self, channel: Channel) -> str:
        """Why the engine switched the channel off (a revoked token, a deleted webhook)."""
        return Truncator(channel.disabled_reason).chars(80) if not channel.is_enabled else ""

    @admin.display(description="Last error")
    def short_last_error(self, channel: Channel) -> str:
        return Truncator(channel.last_error).chars(80)

    @admin.display(description="Sent, last hour", ordering="sends_last_hour")
    def sends_last_hour(self, channel: Channel) -> int:
        return int(getattr(channel, "sends_last_hour", 0))

    @admin.display(description="Stored secrets")
    def stored_secrets(self, channel: Channel | None) -> str:
        if channel is None or not channel.secrets_encrypted:
            return "None stored"
        return format_html_join(
            "", "<div><code>{}</code>: <code>{}</code></div>", masked_secrets(channel).items()
        )

    # --- The form ---------------------------------------------------------------------------
    def _kind(self, request: HttpRequest, obj: Channel | None) -> str:
        return obj.kind if obj is not None else request.GET.get("kind", "")

    def get_readonly_fields(
        self, request: HttpRequest, obj: Channel | None = None
    ) -> list[str] | tuple[Any, ...]:
        fields = [*_STATE_FIELDS, "stored_secrets"]
        return ["kind", *fields] if obj is not None else fields

    def get_fieldsets(self, request: HttpRequest, obj: Channel | None = None) -> Any:
        kind = self._kind(request, obj)
        general = [
            "name",
            "is_enabled",
            "topics",
            "rate_limit_per_second",
            "batch_size",
            "uncertain_policy",
            "tracking",
        ]
        if obj is not None:
            general.insert(1, "kind")
        fieldsets: list[tuple[str | None, dict[str, Any]]] = [(None, {"fields": general})]
        if kind in registry:
            label = registry[kind].label
            fieldsets.append(
                (
                    f"Settings: {label}",
                    {"fields": [CONFIG_PREFIX + n for n in config_field_names(kind)]},
                )
            )
        fieldsets.append(("Secrets", {"fields": ["stored_secrets"]}))
        if obj is not None:
            fieldsets.append(("State", {"fields": list(_STATE_FIELDS)}))
        return fieldsets

    def get_form(
        self, request: HttpRequest, obj: Channel | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = channel_form(self._kind(request, obj))
        return super().get_form(request, obj, change, **kwargs)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.GET.get("kind", "") not in registry:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Choose the kind of channel",
                "kinds": kind_choices(),
            }
            return TemplateResponse(request, "admin/channels/channel/choose_kind.html", context)
        return super().add_view(request, form_url, extra_context)

    def save_model(
        self, request: HttpRequest, obj: Channel, form: ChannelAdminForm, change: bool
    ) -> None:
        if not change:
            obj.kind = form.kind_name
        # The form has validated these; save_channel validates again and stores them.
        save_channel(obj, form.config_data)

    # --- Actions ----------------------------------------------------------------------------
    @admin.action(description="Send a test message")
    def send_test_message_action(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        to = getattr(request.user, "email", "")
        for channel in queryset:
            try:
                outcome = send_test_message(channel, to=to)
            except (ChannelConfigurationError, BackendError) as exc:
                self.message_user(request, f"{channel}: {exc}", messages.ERROR)
                continue
            if outcome.status == OutcomeStatus.SENT:
                where = f" to {to}" if not registry[channel.kind].is_broadcast else ""
                self.message_user(request, f"{channel}: test message sent{where}.")
            else:
                detail = f"{channel}: test message {outcome.status}: {outcome.error}"
                self.message_user(request, detail, messages.WARNING)


# The Delivery, Dispatch, Publication (publish confirmation) and analytics admins live in their
# own modules; importing them registers them.
from channels import (  # noqa: E402, F401
    admin_analytics,
    admin_deliveries,
    admin_digests,
    admin_dispatches,
    admin_publish,
    admin_webhooks,
)
