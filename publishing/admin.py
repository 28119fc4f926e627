"""The editors' back office: publications with versions, diff, restore, per-channel preview and
the publish / schedule / test / archive actions. Every write goes through publishing.services,
which also enforces the roles; the admin hides what a role may not do and answers 403 to a
request that tries anyway."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AdminSplitDateTime
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from publishing import services
from publishing.editor import EditorAdmin, MarkdownEditorWidget
from publishing.exceptions import (
    InvalidPublicationError,
    PublishingError,
    PublishingPermissionError,
)
from publishing.models import (
    AB_MAX_SUBJECTS,
    AB_MIN_SUBJECTS,
    AB_SUBJECT_MAX_LENGTH,
    Dispatch,
    Publication,
    Topic,
)
from publishing.rendering.source import read_source
from publishing.versions import diff_versions, versions_of

logger = logging.getLogger(__name__)

# django-stubs makes these generic for the type checker only; at run time they are plain classes.
if TYPE_CHECKING:
    PublicationModelForm = forms.ModelForm[Publication]
    PublicationModelAdmin = admin.ModelAdmin[Publication]
    TopicModelAdmin = admin.ModelAdmin[Topic]
    DispatchModelAdmin = admin.ModelAdmin[Dispatch]
    DispatchTabularInline = admin.TabularInline[Dispatch, Publication]
else:
    PublicationModelForm = forms.ModelForm
    PublicationModelAdmin = TopicModelAdmin = DispatchModelAdmin = admin.ModelAdmin
    DispatchTabularInline = admin.TabularInline


def _problems_to_form(form: forms.BaseForm, error: InvalidPublicationError) -> None:
    for problem in error.problems:
        field = problem.field if problem.field in form.fields else None
        form.add_error(field, problem.message)


AB_FIELDS: list[Any] = ["subjects", "ab_share", "ab_wait_hours", "ab_metric", "ab_min_sample"]


class PublicationForm(PublicationModelForm):
    subjects = forms.CharField(
        label="A/B subjects",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=f"One per line, {AB_MIN_SUBJECTS} to {AB_MAX_SUBJECTS}, each up to "
        f"{AB_SUBJECT_MAX_LENGTH} characters; the first is sent to everyone when no subject "
        "wins. Empty: no test, the title is the subject.",
    )
    change_reason = forms.CharField(
        label="Note for this version",
        required=False,
        max_length=services.CHANGE_REASON_MAX_LENGTH,
        help_text="Shown in the history, e.g. “Fixed the date in the second paragraph”.",
    )

    class Meta:
        model = Publication
        fields = ["title", "slug", "summary", "body", "topics", "language", *AB_FIELDS]
        widgets = {
            "summary": forms.Textarea(attrs={"rows": 3}),
            "body": MarkdownEditorWidget(attrs={"rows": 24}),
        }
        # The editor shows its own help, beside the text.
        help_texts = {"body": ""}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.is_bound and self.instance.subjects:
            self.initial["subjects"] = "\n".join(self.instance.subjects)
        # A form posted without the A/B settings (a script, an older page) keeps them as they are.
        for name in AB_FIELDS[1:]:
            if name in self.fields:
                self.fields[name].required = False

    def _ab_setting(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        return getattr(self.instance, name) if value in (None, "") else value

    def clean_ab_share(self) -> Any:
        return self._ab_setting("ab_share")

    def clean_ab_wait_hours(self) -> Any:
        return self._ab_setting("ab_wait_hours")

    def clean_ab_metric(self) -> Any:
        return self._ab_setting("ab_metric")

    def clean_ab_min_sample(self) -> Any:
        return self._ab_setting("ab_min_sample")

    def clean_subjects(self) -> list[str]:
        """One subject a line; blank lines are ignored."""
        text: str = self.cleaned_data.get("subjects") or ""
        return [line.strip() for line in text.splitlines() if line.strip()]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        try:
            services.check_publication_input(self.to_input(), instance=self.instance)
        except InvalidPublicationError as error:
            _problems_to_form(self, error)
        return cleaned

    def to_input(self) -> services.PublicationInput:
        data = self.cleaned_data
        return services.PublicationInput(
            title=data["title"],
            slug=data["slug"],
            summary=data.get("summary", ""),
            body=data["body"],
            topics=list(data["topics"]),
            language=data["language"],
            subjects=data.get("subjects") or [],
            ab_share=data.get("ab_share", self.instance.ab_share),
            ab_wait_hours=data.get("ab_wait_hours", self.instance.ab_wait_hours),
            ab_metric=data.get("ab_metric", self.instance.ab_metric),
            ab_min_sample=data.get("ab_min_sample", self.instance.ab_min_sample),
        )


class ScheduleForm(forms.Form):
    """The time is read in the active time zone: the editor's (publishing.middleware), named in
    the label so that nobody has to guess."""

    publish_at = forms.SplitDateTimeField(
        label="Publish at",
        widget=AdminSplitDateTime,
        help_text="A time in the future.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        zone = timezone.get_current_timezone_name()
        self.fields["publish_at"].label = f"Publish at ({zone})"
        self.fields["publish_at"].help_text = (
            f"A time in the future, in {zone}: your browser's time zone, or UTC if the admin "
            "does not know it yet."
        )

    def clean_publish_at(self) -> datetime:
        value: datetime = self.cleaned_data["publish_at"]
        try:
            return services.check_publish_at(value)
        except InvalidPublicationError as error:
            raise forms.ValidationError(error.problems[0].message, code=error.code) from None


class DispatchInline(DispatchTabularInline):
    model = Dispatch
    extra = 0
    can_delete = False
    # Each send links to its page, where its progress refreshes itself.
    show_change_link = True
    fields = ("kind", "status", "version_label", "created_by", "created_at")
    readonly_fields = fields

    @admin.display(description="Version sent")
    def version_label(self, dispatch: Dispatch) -> str:
        return f"version {dispatch.version_number}"

    def has_add_permission(self, request: HttpRequest, obj: Publication | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Publication | None = None) -> bool:
        return False


@admin.register(Publication)
class PublicationAdmin(EditorAdmin):
    form = PublicationForm
    change_form_template = "publishing/admin/change_form.html"
    list_display = ["title", "status", "topic_list", "author", "publish_at", "published_at"]
    list_filter = [
        "status",
        "topics",
        "author",
        ("published_at", admin.DateFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["title", "slug", "summary", "body"]
    date_hierarchy = "created_at"
    prepopulated_fields = {"slug": ("title",)}
    filter_horizontal = ["topics"]
    readonly_fields = ("status", "publish_at", "published_at", "author", "created_at", "updated_at")
    fieldsets = [
        (None, {"fields": ["title", "slug", "summary", "body", "topics", "language"]}),
        (
            "A/B subjects",
            {
                "fields": AB_FIELDS,
                "classes": ["collapse"],
                "description": "Send a test share of the email audience two to four subjects "
                "at random; after the wait, the subject that won (two-proportion z-test, 95%, "
                "with the minimum sample) goes to the rest. Slack, Discord and webhooks are "
                "sent at once, as usual.",
            },
        ),
        ("This change", {"fields": ["change_reason"]}),
        (
            "Status",
            {"fields": list(readonly_fields)},
        ),
    ]
    inlines = [DispatchInline]
    actions = ["publish_now", "schedule_selected", "send_test_to_myself", "archive_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Publication]:
        return super().get_queryset(request).select_related("author").prefetch_related("topics")

    @admin.display(description="Topics")
    def topic_list(self, publication: Publication) -> str:
        return ", ".join(topic.name for topic in publication.topics.all())

    def get_fieldsets(self, request: HttpRequest, obj: Publication | None = None) -> Any:
        if obj is not None and not self.has_change_permission(request, obj):
            return [(None, {"fields": ["title", "slug", "summary", "body", "topics", "language"]}),
                    ("A/B subjects", {"fields": AB_FIELDS}),
                    ("Status", {"fields": list(self.readonly_fields)})]  # fmt: skip
        return self.fieldsets

    # --- Roles ------------------------------------------------------------------------------

    def has_change_permission(self, request: HttpRequest, obj: Publication | None = None) -> bool:
        if not super().has_change_permission(request, obj):
            return False
        return obj is None or services.can_edit(obj, request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Publication | None = None) -> bool:
        if not super().has_delete_permission(request, obj):
            return False
        return obj is None or not obj.dispatches.exists()

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(services.PUBLISH_PERMISSION)

    def has_archive_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(services.ARCHIVE_PERMISSION)

    # --- Saving through the services ---------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Publication, form: Any, change: bool) -> None:
        data = form.to_input()
        reason = form.cleaned_data.get("change_reason", "")
        user: Any = request.user
        if change:
            services.update_publication(obj, data, by=user, reason=reason)
        else:
            created = services.create_publication(data, by=user, reason=reason)
            obj.pk = created.pk
            obj.refresh_from_db()

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # Topics were set by the service, in the same version as the fields.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    # --- Actions -----------------------------------------------------------------------------

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Publication],
        operation: Callable[[Publication], object],
        done: str,
    ) -> int:
        count = 0
        for publication in queryset:
            try:
                operation(publication)
            except PublishingError as error:
                self.message_user(request, f"{publication}: {error}", messages.ERROR)
            else:
                count += 1
        if count:
            self.message_user(request, f"{count} publication(s) {done}.", messages.SUCCESS)
        return count

    @admin.action(description="Publish now", permissions=["publish"])
    def publish_now(
        self, request: HttpRequest, queryset: QuerySet[Publication]
    ) -> TemplateResponse | None:
        """Publish at once. The registered admin (channels/admin_publish.py) shows the audience
        and asks first."""
        user: Any = request.user
        self._each(request, queryset, lambda p: services.publish(p, by=user), "published")
        return None

    @admin.action(description="Schedule…", permissions=["publish"])
    def schedule_selected(
        self, request: HttpRequest, queryset: QuerySet[Publication]
    ) -> TemplateResponse | None:
        user: Any = request.user
        form = ScheduleForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            at = form.cleaned_data["publish_at"]
            self._each(request, queryset, lambda p: services.schedule(p, at, by=user), "scheduled")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Schedule publications",
            "opts": self.model._meta,
            "form": form,
            "publications": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "publishing/admin/schedule.html", context)

    @admin.action(description="Send a test to myself", permissions=["view"])
    def send_test_to_myself(self, request: HttpRequest, queryset: QuerySet[Publication]) -> None:
        user: Any = request.user
        self._each(
            request, queryset, lambda p: services.send_test(p, user), f"sent to {user.email}"
        )

    @admin.action(description="Archive", permissions=["archive"])
    def archive_selected(self, request: HttpRequest, queryset: QuerySet[Publication]) -> None:
        user: Any = request.user
        self._each(request, queryset, lambda p: services.archive(p, by=user), "archived")

    # --- Object pages: preview, versions, diff, restore, one-publication actions ----------------

    def get_urls(self) -> list[URLPattern]:
        def view(function: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
            return self.admin_site.admin_view(function)

        info = "publishing_publication"
        custom = [
            path("<int:object_id>/preview/", view(self.preview_view), name=f"{info}_preview"),
            path("<int:object_id>/diff/", view(self.diff_view), name=f"{info}_diff"),
            path(
                "<int:object_id>/versions/<int:history_id>/restore/",
                view(self.restore_view),
                name=f"{info}_restore",
            ),
            path("<int:object_id>/schedule/", view(self.schedule_view), name=f"{info}_schedule"),
            path(
                "<int:object_id>/do/<str:operation>/",
                view(self.operation_view),
                name=f"{info}_operation",
            ),
        ]
        return custom + super().get_urls()

    def _object(self, request: HttpRequest, object_id: int) -> Publication:
        publication = get_object_or_404(Publication, pk=object_id)
        if not self.has_view_or_change_permission(request, publication):
            raise PermissionDenied
        return publication

    def _change_url(self, publication: Publication) -> str:
        return reverse("admin:publishing_publication_change", args=[publication.pk])

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {
            **(extra_context or {}),
            "can_publish": self.has_publish_permission(request),
            "can_archive": self.has_archive_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra)

    def preview_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: the last saved version in every channel. POST (the form's Preview button):
        the form as it stands, not saved (publishing.editor)."""
        publication = self._object(request, object_id)
        if request.method == "POST":
            if not self.has_change_permission(request, publication):
                raise PermissionDenied
            return self.form_preview(request, publication)
        version = publication.history.order_by("-history_id").first() or publication
        return self.render_preview(
            request,
            publication,
            read_source(version),
            title=f"Preview: {publication}",
            unsaved=False,
        )

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        publication = self._object(request, int(object_id))
        rows = versions_of(publication)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Versions of “{publication}”",
            "opts": self.model._meta,
            "original": publication,
            "rows": rows,
            "can_restore": self.has_change_permission(request, publication),
            **(extra_context or {}),
        }
        return TemplateResponse(request, "publishing/admin/versions.html", context)

    def diff_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        publication = self._object(request, object_id)
        history = publication.history.all()
        try:
            old = history.get(history_id=int(request.GET["a"]))
            new = history.get(history_id=int(request.GET["b"]))
        except (KeyError, ValueError, history.model.DoesNotExist):
            raise Http404("Choose two versions of this publication to compare.") from None
        if old.history_id > new.history_id:
            old, new = new, old
        context = {
            **self.admin_site.each_context(request),
            "title": f"Changes to “{publication}”",
            "opts": self.model._meta,
            "original": publication,
            "old": old,
            "new": new,
            "old_number": services.version_number(old),
            "new_number": services.version_number(new),
            "diffs": diff_versions(old, new),
        }
        return TemplateResponse(request, "publishing/admin/diff.html", context)

    def restore_view(self, request: HttpRequest, object_id: int, history_id: int) -> HttpResponse:
        publication = self._object(request, object_id)
        version = get_object_or_404(publication.history.all(), history_id=history_id)
        if request.method != "POST":
            return HttpResponseRedirect(
                reverse("admin:publishing_publication_history", args=[object_id])
            )
        if not self.has_change_permission(request, publication):
            raise PermissionDenied
        user: Any = request.user
        try:
            new = services.restore_version(publication, version, by=user)
        except PublishingPermissionError:
            raise PermissionDenied from None
        except PublishingError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(
                request,
                f"Version {services.version_number(version)} restored as version "
                f"{services.version_number(new)}.",
                messages.SUCCESS,
            )
        return HttpResponseRedirect(self._change_url(publication))

    def schedule_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        publication = self._object(request, object_id)
        if not self.has_publish_permission(request):
            raise PermissionDenied
        form = ScheduleForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            user: Any = request.user
            try:
                services.schedule(publication, form.cleaned_data["publish_at"], by=user)
            except PublishingError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, "Scheduled.", messages.SUCCESS)
                return HttpResponseRedirect(self._change_url(publication))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Schedule “{publication}”",
            "opts": self.model._meta,
            "original": publication,
            "form": form,
            "publications": [publication],
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "publishing/admin/schedule.html", context)

    def operation_view(self, request: HttpRequest, object_id: int, operation: str) -> HttpResponse:
        """POST only: one of the _OPERATIONS on one publication, then back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if operation not in _OPERATIONS:
            raise Http404
        publication = self._object(request, object_id)
        done, function = _OPERATIONS[operation]
        try:
            function(publication, request.user)
        except PublishingPermissionError:
            raise PermissionDenied from None
        except PublishingError as error:
            self.message_user(request, str(error), messages.ERROR)
        else:
            self.message_user(request, done, messages.SUCCESS)
        return HttpResponseRedirect(self._change_url(publication))


# Publishing and sending again are not here: they go through the confirmation page that counts
# the audience first (channels/admin_publish.py).
_OPERATIONS: dict[str, tuple[str, Callable[[Publication, Any], object]]] = {
    "unschedule": ("Back to draft.", lambda p, user: services.unschedule(p, by=user)),
    "archive": ("Archived.", lambda p, user: services.archive(p, by=user)),
    "send-test": ("Test sent to your address.", lambda p, user: services.send_test(p, user)),
}


@admin.register(Topic)
class TopicAdmin(TopicModelAdmin):
    list_display = ["name", "slug", "is_public", "publication_count"]
    list_filter = ["is_public"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ("name",)}

    @admin.display(description="Publications")
    def publication_count(self, topic: Topic) -> int:
        return topic.publications.count()


DISPATCH_FIELDS = [
    "publication",
    "version_number",
    "kind",
    "status",
    "created_by",
    "created_at",
    "planned_at",
    "finished_at",
    "paused_at",
    "pause_reason",
]


@admin.register(Dispatch)
class DispatchAdmin(DispatchModelAdmin):
    list_display = [
        "__str__",
        "publication",
        "version_number",
        "kind",
        "status",
        "created_by",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["publication__title", "publication__slug"]
    list_select_related = ["publication", "created_by"]
    # The version by its number within the publication, not the history row (decision 0076).
    fields = tuple(DISPATCH_FIELDS)
    readonly_fields = DISPATCH_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Dispatch | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Dispatch | None = None) -> bool:
        return False


import publishing.admin_api_keys  # noqa: E402, F401 (registers the API key admin)
from publishing import admin_translations  # noqa: E402, F401 (registers the translations admin)
