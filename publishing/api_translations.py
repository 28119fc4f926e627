"""The translations of a publication in the API (decision 0082), under the publication:
``/api/v1/publications/{id}/translations/`` and ``.../translations/{language}/``.

Reads need publications:read, writes publications:write; every write calls
publishing.translations, which applies the publication's editing rules and records one version.
The serializers only check shapes and limits; the service names the field and the limit of
anything else (unknown language, the original's language, a second translation in a language).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.conditional import PreconditionFailed, etag_for
from config.api.schema import WRITE_ERRORS, document
from config.api.views import ApiViewMixin
from publishing import translations as services
from publishing.models import (
    BODY_MAX_LENGTH,
    SUMMARY_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    ApiScope,
    Publication,
    PublicationTranslation,
)
from publishing.validation import CHANGE_REASON_MAX_LENGTH

READ = ApiScope.PUBLICATIONS_READ.value
WRITE = ApiScope.PUBLICATIONS_WRITE.value
LANGUAGES_HELP = "One of " + ", ".join(code for code, _ in settings.LANGUAGES) + "."
#: A language in a URL: letters and a hyphen, as language codes are.
LANGUAGE_PATTERN = r"[A-Za-z][A-Za-z-]{1,9}"


class TranslationSerializer(serializers.Serializer[Any]):
    language = serializers.CharField(help_text=LANGUAGES_HELP)
    title = serializers.CharField()
    summary = serializers.CharField()
    body = serializers.CharField(help_text="Markdown, sanitised when rendered as the body is.")
    url = serializers.CharField(help_text="The public page in this language (once published).")
    version = serializers.IntegerField(
        help_text="The number of the current version of the publication in this language."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class TranslationWriteSerializer(serializers.Serializer[dict[str, Any]]):
    language = serializers.CharField(
        max_length=10,
        help_text=f"{LANGUAGES_HELP} Not the publication's own; set once (required to add).",
        required=False,
    )
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH, trim_whitespace=False)
    summary = serializers.CharField(
        max_length=SUMMARY_MAX_LENGTH, allow_blank=True, required=False, default=""
    )
    body = serializers.CharField(max_length=BODY_MAX_LENGTH, help_text="Markdown.")
    change_reason = serializers.CharField(
        max_length=CHANGE_REASON_MAX_LENGTH, required=False, default="", allow_blank=True
    )


class TranslationVersionSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    title = serializers.CharField()
    summary = serializers.CharField()
    reason = serializers.CharField(allow_null=True)
    deleted = serializers.BooleanField(help_text="This version is the translation's deletion.")
    created_at = serializers.DateTimeField()


def represent(translation: PublicationTranslation) -> dict[str, Any]:
    latest = translation.history.order_by("-history_id").first()
    return TranslationSerializer(
        {
            "language": translation.language,
            "title": translation.title,
            "summary": translation.summary,
            "body": translation.body,
            "url": settings.SITE_URL + translation.get_absolute_url(),
            "version": services.version_number(latest) if latest is not None else 0,
            "created_at": translation.created_at,
            "updated_at": translation.updated_at,
        }
    ).data


LANGUAGE_PARAMETER = OpenApiParameter(
    "language", str, OpenApiParameter.PATH, description="The translation's language."
)
EXAMPLE = OpenApiExample(
    "French",
    value={
        "language": "fr",
        "title": "Version d'automne",
        "summary": "Ce qui a changé cet automne.",
        "body": "# Automne\n\nTout ce qui est nouveau.",
    },
    request_only=True,
)


class PublicationTranslationViewSet(ApiViewMixin, viewsets.GenericViewSet[Publication]):
    """A publication's translations: one per language, each with its versions. (The stubs
    leave DRF's ``.mapping`` decorators untyped, hence their ignores.)"""

    queryset = Publication.objects.all()
    serializer_class = TranslationSerializer
    required_scopes = {
        "translations": READ,
        "add_translation": WRITE,
        "translation": READ,
        "replace_translation": WRITE,
        "change_translation": WRITE,
        "delete_translation": WRITE,
        "translation_versions": READ,
    }

    def _publication(self) -> Publication:
        return get_object_or_404(Publication, pk=self.kwargs["pk"])

    def _translation(self, language: str, *, write: bool = False) -> PublicationTranslation:
        found = get_object_or_404(
            PublicationTranslation.objects.select_related("publication"),
            publication_id=self.kwargs["pk"],
            language=language,
        )
        self._conditional_object = found
        if_match = self.request.headers.get("If-Match")
        if write and if_match:
            etags = parse_etags(if_match)
            if "*" not in etags and etag_for(represent(found)) not in etags:
                raise PreconditionFailed()
        return found

    def _input(self, data: dict[str, Any], language: str) -> services.TranslationInput:
        return services.TranslationInput(
            language=data.get("language") or language,
            title=data["title"],
            summary=data.get("summary", ""),
            body=data["body"],
        )

    @document(
        summary="List a publication's translations",
        description="Every translation of the publication, by language, with its body and "
        "the number of its current version. Needs publications:read.",
        responses={200: TranslationSerializer(many=True)},
    )
    @extend_schema(operation_id="v1_publications_translations_list")
    @action(detail=True, methods=["get"], url_path="translations")
    def translations(self, request: Request, pk: str | None = None) -> Response:
        publication = self._publication()
        rows = publication.translations.select_related("publication").order_by("language")
        return Response([represent(translation) for translation in rows])

    @document(
        summary="Add a translation",
        description="Adds the publication in another language (not its own, one per "
        "language), with its first version. The body is Markdown, sanitised like the "
        "publication's. Follows the publication's editing rules: a scheduled or published one "
        "needs the publish right, an archived one answers 409. Accepts Idempotency-Key. "
        "Needs publications:write.",
        request=TranslationWriteSerializer,
        responses={201: TranslationSerializer},
        errors=WRITE_ERRORS,
        examples=[EXAMPLE],
    )
    @translations.mapping.post  # type: ignore[untyped-decorator]
    def add_translation(self, request: Request, pk: str | None = None) -> Response:
        publication = self._publication()
        serializer = TranslationWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if not data.get("language"):
            raise serializers.ValidationError({"language": ["This field is required."]})
        translation = services.add_translation(
            publication, self._input(data, ""), by=self.actor(), reason=data["change_reason"]
        )
        response = Response(represent(translation), status=status.HTTP_201_CREATED)
        response["Location"] = (
            f"/api/v1/publications/{publication.pk}/translations/{translation.language}/"
        )
        return response

    @document(
        summary="Read a translation",
        description="The publication in one language. Sends ETag and Last-Modified. "
        "Needs publications:read.",
        responses={200: TranslationSerializer},
        parameters=[LANGUAGE_PARAMETER],
    )
    @action(detail=True, methods=["get"], url_path=f"translations/(?P<language>{LANGUAGE_PATTERN})")
    def translation(self, request: Request, pk: str | None = None, language: str = "") -> Response:
        return Response(represent(self._translation(language)))

    def _change(self, request: Request, language: str, *, partial: bool) -> Response:
        translation = self._translation(language, write=True)
        serializer = TranslationWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        current = {
            "language": translation.language,
            "title": translation.title,
            "summary": translation.summary,
            "body": translation.body,
        }
        data = {**current, **serializer.validated_data}
        services.update_translation(
            translation,
            self._input(data, language),
            by=self.actor(),
            reason=data.get("change_reason", ""),
        )
        return Response(represent(translation))

    @document(
        summary="Replace a translation",
        description="Title, summary and body; one new version. The language cannot change "
        "(400 naming `language`). Honours If-Match. Needs publications:write.",
        request=TranslationWriteSerializer,
        responses={200: TranslationSerializer},
        errors=WRITE_ERRORS,
        parameters=[LANGUAGE_PARAMETER],
    )
    @translation.mapping.put  # type: ignore[untyped-decorator]
    def replace_translation(
        self, request: Request, pk: str | None = None, language: str = ""
    ) -> Response:
        return self._change(request, language, partial=False)

    @document(
        summary="Change some fields of a translation",
        description="Only the fields sent change; one new version. Honours If-Match. "
        "Needs publications:write.",
        request=TranslationWriteSerializer(partial=True),
        responses={200: TranslationSerializer},
        errors=WRITE_ERRORS,
        parameters=[LANGUAGE_PARAMETER],
    )
    @translation.mapping.patch  # type: ignore[untyped-decorator]
    def change_translation(
        self, request: Request, pk: str | None = None, language: str = ""
    ) -> Response:
        return self._change(request, language, partial=True)

    @document(
        summary="Delete a translation",
        description="Readers of that language get the original from now on; its versions "
        "stay, and a dispatch that pinned one still sends it. Honours If-Match. "
        "Needs publications:write.",
        responses={204: None},
        errors=WRITE_ERRORS,
        parameters=[LANGUAGE_PARAMETER],
    )
    @translation.mapping.delete  # type: ignore[untyped-decorator]
    def delete_translation(
        self, request: Request, pk: str | None = None, language: str = ""
    ) -> Response:
        services.delete_translation(self._translation(language, write=True), by=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @document(
        summary="List a translation's versions",
        description="Every version of the publication in this language, newest first, "
        "numbered from 1 (a deletion included). Needs publications:read.",
        responses={200: TranslationVersionSerializer(many=True)},
        parameters=[LANGUAGE_PARAMETER],
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=f"translations/(?P<language>{LANGUAGE_PATTERN})/versions",
    )
    def translation_versions(
        self, request: Request, pk: str | None = None, language: str = ""
    ) -> Response:
        history = services.history_model().objects.filter(
            publication_id=self._publication().pk, language=language
        )
        rows = list(history.order_by("history_id"))
        if not rows:
            raise Http404("No translation in this language.")
        data = [
            {
                "number": number,
                "title": row.title,
                "summary": row.summary,
                "reason": row.history_change_reason,
                "deleted": row.history_type == "-",
                "created_at": row.history_date,
            }
            for number, row in enumerate(rows, start=1)
        ][::-1]
        return Response(TranslationVersionSerializer(data, many=True).data)
