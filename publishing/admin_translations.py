"""Translations in the admin (decision 0082): a page per translation with the publication's
Markdown editor, reached from the publication's page, which lists its translations
(templates/publishing/admin/change_form.html).

Rights are the publication's: whoever may change the publication now may add, change or delete
its translations (publishing.access.can_edit), so no role needs new permissions. Every write
goes through publishing.translations, which records one version per save.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse

from publishing import translations
from publishing.access import can_edit
from publishing.editor import MarkdownEditorWidget
from publishing.exceptions import InvalidPublicationError, PublishingError
from publishing.models import PublicationTranslation
from publishing.validation import CHANGE_REASON_MAX_LENGTH

if TYPE_CHECKING:
    TranslationModelForm = forms.ModelForm[PublicationTranslation]
    TranslationModelAdmin = admin.ModelAdmin[PublicationTranslation]
else:
    TranslationModelForm = forms.ModelForm
    TranslationModelAdmin = admin.ModelAdmin

VIEW_PUBLICATION = "publishing.view_publication"
CHANGE_PUBLICATION = "publishing.change_publication"


class TranslationForm(TranslationModelForm):
    change_reason = forms.CharField(
        label="Note for this version",
        required=False,
        max_length=CHANGE_REASON_MAX_LENGTH,
        help_text="Shown in the translation's versions.",
    )

    class Meta:
        model = PublicationTranslation
        fields = ["publication", "language", "title", "summary", "body"]
        widgets = {
            "summary": forms.Textarea(attrs={"rows": 3}),
            "body": MarkdownEditorWidget(attrs={"rows": 24}),
        }
        help_texts = {"body": ""}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            # Set once: a translation belongs to one publication, in one language.
            for name in ("publication", "language"):
                self.fields[name].disabled = True

    def to_input(self) -> translations.TranslationInput:
        data = self.cleaned_data
        return translations.TranslationInput(
            language=data["language"],
            title=data["title"],
            summary=data.get("summary") or "",
            body=data["body"],
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        publication = cleaned.get("publication")
        if self.errors or publication is None:
            return cleaned
        instance = self.instance if self.instance.pk is not None else None
        try:
            translations.check_translation_input(publication, self.to_input(), instance=instance)
        except InvalidPublicationError as error:
            for problem in error.problems:
                self.add_error(
                    problem.field if problem.field in self.fields else None, problem.message
                )
        return cleaned

    def validate_unique(self) -> None:
        # The service reports a second translation in a language, naming the field.
        pass


@admin.register(PublicationTranslation)
class PublicationTranslationAdmin(TranslationModelAdmin):
    form = TranslationForm
    list_display = ["title", "publication", "language", "updated_at"]
    list_filter = ["language"]
    list_select_related = ["publication"]
    search_fields = ["title", "publication__title", "publication__slug"]
    readonly_fields = ("created_at", "updated_at")
    fields = [
        "publication",
        "language",
        "title",
        "summary",
        "body",
        "change_reason",
        *readonly_fields,
    ]

    # --- Rights: the publication's ------------------------------------------------------------

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(VIEW_PUBLICATION)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm(VIEW_PUBLICATION) or self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CHANGE_PUBLICATION)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return request.user.has_perm(CHANGE_PUBLICATION)
        return can_edit(obj.publication, request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_change_permission(request, obj)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PublicationTranslation]:
        return super().get_queryset(request).select_related("publication")

    # --- Saving through the service -----------------------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: PublicationTranslation, form: Any, change: bool
    ) -> None:
        user: Any = request.user
        reason = form.cleaned_data.get("change_reason", "")
        data = form.to_input()
        try:
            if change:
                translations.update_translation(obj, data, by=user, reason=reason)
            else:
                created = translations.add_translation(
                    form.cleaned_data["publication"], data, by=user, reason=reason
                )
                obj.pk = created.pk
                obj.refresh_from_db()
        except PublishingError as error:
            # The form's check ran first: only a right lost or a race since lands here.
            raise PermissionDenied(str(error)) from error

    def delete_model(self, request: HttpRequest, obj: PublicationTranslation) -> None:
        user: Any = request.user
        translations.delete_translation(obj, by=user)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[PublicationTranslation]
    ) -> None:
        user: Any = request.user
        for translation in queryset:
            translations.delete_translation(translation, by=user)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        translation = get_object_or_404(PublicationTranslation, pk=object_id)
        if not self.has_view_permission(request, translation):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": f"Versions of “{translation}”",
            "opts": self.model._meta,
            "original": translation,
            "rows": translations.versions_of(translation),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "publishing/admin/translation_versions.html", context)
