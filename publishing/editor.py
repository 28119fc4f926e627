"""The publication form's writing tools: the Markdown editor with its live preview, image
upload, and the preview of every channel from the form as it stands, before saving.

The editor is django-markdownx's widget (decision 0077): its script posts the text to a
"markdownify" URL and shows the answer beside the text, and sends dropped or pasted images to
an upload URL. Both URLs are ours, under the admin (``EditorAdmin``): a staff session with the
permission to add or change publications, and a CSRF token, are required; markdownx's own
views, which check nothing, are never routed. The preview is our renderer's output (Markdown,
then nh3): exactly what readers get.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from markdownx.widgets import AdminMarkdownxWidget

from publishing import images, rendering
from publishing.exceptions import InvalidPublicationError
from publishing.models import Publication, Topic
from publishing.previews import preview_channels
from publishing.rendering.source import Source

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    PublicationModelAdmin = admin.ModelAdmin[Publication]
else:
    PublicationModelAdmin = admin.ModelAdmin

ACCEPTED_IMAGE_TYPES = "image/jpeg,image/png,image/gif,image/webp"
# Characters that would end or break a Markdown image's alt text.
_ALT_UNSAFE = re.compile(r"[\[\]\\\n\r]+")


def markdownify(content: str) -> str:
    """MARKDOWNX_MARKDOWNIFY_FUNCTION: the body as readers get it (sanitised HTML)."""
    return rendering.markdown_to_html(content)


def image_markdown(url: str, alt: str) -> str:
    """``![alt](url)`` with the alt text on one line and unable to close the brackets."""
    text = " ".join(_ALT_UNSAFE.sub(" ", alt).split())
    return f"![{text}]({url})"


class MarkdownEditorWidget(AdminMarkdownxWidget):  # type: ignore[misc]
    """markdownx's admin widget, pointed at our URLs, with an "Add an image" row that asks for
    the alt text before it uploads."""

    template_name = "publishing/widgets/markdown_editor.html"

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context(name, value, attrs)
        upload_url = reverse("admin:publishing_publication_upload")
        context["widget"]["attrs"].update(
            {
                "data-markdownx-urls-path": reverse("admin:publishing_publication_markdownify"),
                "data-markdownx-upload-urls-path": upload_url,
                "aria-describedby": "body-editor-help",
            }
        )
        context["upload_url"] = upload_url
        context["accepted_types"] = ACCEPTED_IMAGE_TYPES
        return context

    @property
    def media(self) -> forms.Media:
        return super().media + forms.Media(  # type: ignore[no-any-return]
            css={"all": ["publishing/editor.css"]}, js=["publishing/editor.js"]
        )


class ImageUploadForm(forms.Form):
    image = forms.FileField(label=gettext_lazy("Image"))
    alt = forms.CharField(label=gettext_lazy("Alt text"), required=False, max_length=300)


class EditorAdmin(PublicationModelAdmin):
    """The editor's URLs and the preview of every channel; PublicationAdmin extends it."""

    def get_urls(self) -> list[URLPattern]:
        def view(function: Any) -> Any:
            return self.admin_site.admin_view(function)

        info = "publishing_publication"
        return [
            path("editor/markdownify/", view(self.markdownify_view), name=f"{info}_markdownify"),
            path("editor/upload/", view(self.upload_view), name=f"{info}_upload"),
            path("preview/", view(self.new_preview_view), name=f"{info}_form_preview"),
            *super().get_urls(),
        ]

    def _require_writer(self, request: HttpRequest) -> None:
        """Staff (admin_view saw to that) who may add or change publications."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied

    def markdownify_view(self, request: HttpRequest) -> HttpResponse:
        """POST ``content``: the sanitised HTML of that Markdown, for the live preview."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require_writer(request)
        return HttpResponse(markdownify(request.POST.get("content", "")))

    def upload_view(self, request: HttpRequest) -> JsonResponse | HttpResponse:
        """POST ``image`` (and ``alt``): the stored image's Markdown, ``{"image_code": ...}``, or
        400 with ``{"image": [the error naming the limit]}``."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        self._require_writer(request)
        limit = settings.IMAGE_UPLOAD_MAX_MB
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if declared.isdigit() and int(declared) > (limit + 1) * 1024 * 1024:
            # Refused before the body is read: a huge upload never reaches the disk.
            message = _("The image is larger than %(limit)s MB, the limit.") % {"limit": limit}
            return JsonResponse({"image": [message]}, status=400)
        form = ImageUploadForm(request.POST, request.FILES)
        if not form.is_valid():
            return JsonResponse(form.errors, status=400)
        upload = form.cleaned_data["image"]
        try:
            stored = images.store_image(upload, size=upload.size)
        except InvalidPublicationError as error:
            return JsonResponse(error.by_field(), status=400)
        logger.info("Image %s uploaded by user %s", stored.name, request.user.pk)
        return JsonResponse(
            {
                "image_code": image_markdown(stored.url, form.cleaned_data["alt"]),
                "url": stored.url,
                "width": stored.width,
                "height": stored.height,
            }
        )

    # --- The preview of every channel -------------------------------------------------------

    def new_preview_view(self, request: HttpRequest) -> HttpResponse:
        """POST from the add form: every channel's rendering of what it holds, nothing saved."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_add_permission(request):
            raise PermissionDenied
        return self.form_preview(request, None)

    def form_preview(self, request: HttpRequest, publication: Publication | None) -> HttpResponse:
        """Every channel's rendering of the submitted form; nothing is saved, ever.

        The form is validated (so the page can say what saving would refuse) but a preview is
        shown even when it is invalid: a draft is worth previewing before it is complete.
        """
        form_class = self.get_form(request, publication)
        form = form_class(request.POST, instance=publication or Publication())
        form.is_valid()
        data = request.POST
        languages = {code for code, _name in settings.LANGUAGES}
        language = data.get("language", "")
        topic_ids = [int(value) for value in data.getlist("topics") if value.isdigit()]
        topics = Topic.objects.filter(pk__in=topic_ids).order_by("slug")
        source = Source(
            publication_id=publication.pk if publication else None,
            version_id=None,
            # The number saving would give this version.
            version_number=publication.history.count() + 1 if publication else 1,
            title=data.get("title", ""),
            slug=data.get("slug", ""),
            summary=data.get("summary", ""),
            body=data.get("body", ""),
            language=language if language in languages else settings.LANGUAGE_CODE,
            published_at=publication.published_at if publication else None,
            topics=tuple(topics.values_list("slug", "name")),
        )
        problems = [str(message) for messages in form.errors.values() for message in messages]
        title = _("Preview (not saved): %(title)s") % {"title": source.title or _("untitled")}
        return self.render_preview(
            request, publication, source, title=title, unsaved=True, problems=problems
        )

    def render_preview(
        self,
        request: HttpRequest,
        publication: Publication | None,
        source: Source,
        *,
        title: str,
        unsaved: bool,
        problems: list[str] | None = None,
    ) -> TemplateResponse:
        user: Any = request.user
        previews = preview_channels(source, viewer_name=user.get_full_name() or user.username)
        context = {
            **self.admin_site.each_context(request),
            **previews.context(),
            "title": title,
            "opts": self.model._meta,
            "original": publication,
            "unsaved": unsaved,
            "problems": problems or [],
        }
        return TemplateResponse(request, "publishing/admin/preview.html", context)
