"""API keys in the admin: created here (the key is shown once), revoked, never edited."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from publishing import api_keys
from publishing.models import ApiKey, ApiScope

if TYPE_CHECKING:
    ApiKeyAdminBase = admin.ModelAdmin[ApiKey]
    ApiKeyFormBase = forms.ModelForm[ApiKey]
else:  # not subscriptable at run time
    ApiKeyAdminBase = admin.ModelAdmin
    ApiKeyFormBase = forms.ModelForm


class ApiKeyForm(ApiKeyFormBase):
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = ApiKey
        fields = ["name", "owner", "scopes", "expires_at"]

    def clean_expires_at(self) -> datetime | None:
        value: datetime | None = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("The expiry date is in the past.")
        return value


READ_ONLY = ["name", "owner", "scopes", "prefix", "created_at", "last_used_at", "expires_at"]
READ_ONLY += ["revoked_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(ApiKeyAdminBase):
    form = ApiKeyForm
    list_display = ["name", "prefix", "owner", "scope_list", "created_at", "last_used_at"]
    list_display += ["expires_at", "revoked_at"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "=prefix"]
    list_select_related = ["owner"]
    actions = ["revoke"]

    @admin.display(description="Scopes")
    def scope_list(self, api_key: ApiKey) -> str:
        return ", ".join(api_key.scopes)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return []
        return [*READ_ONLY]

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ["name", "owner", "scopes", "expires_at"]
        return self.get_readonly_fields(request, obj)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # keys are never edited: revoke and create another
        try:
            created = api_keys.create_api_key(
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                owner=form.cleaned_data["owner"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except api_keys.ApiKeyError as error:
            raise forms.ValidationError(str(error)) from None
        obj.pk = created.api_key.pk
        obj.refresh_from_db()
        self.message_user(
            request,
            f"The new API key is {created.key} — copy it now: it will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for api_key in queryset:
            api_keys.revoke_api_key(api_key)
        self.message_user(request, f"{queryset.count()} API keys revoked.", messages.SUCCESS)
