"""The publications API's representations: what each endpoint reads and accepts.

The serializers only check shapes and limits; publishing.services checks the rules. The list's
representation is hand-built from plain rows (``list_item``): it is the API's busiest read
(docs/performance.md, "API").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers

from publishing.models import (
    BODY_MAX_LENGTH,
    MAX_TOPICS,
    MIN_TOPICS,
    SUMMARY_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Publication,
    Topic,
)
from publishing.topics import (
    TOPIC_DESCRIPTION_MAX_LENGTH,
    TOPIC_NAME_MAX_LENGTH,
    TOPIC_SLUG_MAX_LENGTH,
)
from publishing.validation import CHANGE_REASON_MAX_LENGTH

SLUG_MAX_LENGTH = 100


class TopicSerializer(serializers.ModelSerializer[Topic]):
    class Meta:
        model = Topic
        fields = ["id", "name", "slug", "description", "is_public", "archived_at", "updated_at"]
        read_only_fields = fields
        extra_kwargs = {
            "archived_at": {
                "help_text": "When the topic was archived (no longer offered to new "
                "subscribers; existing subscriptions stay); null while it is offered."
            }
        }


class TopicCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=TOPIC_NAME_MAX_LENGTH)
    slug = serializers.SlugField(
        max_length=TOPIC_SLUG_MAX_LENGTH,
        help_text="Set once: a topic's slug never changes (it is in URLs, feeds and your data).",
    )
    description = serializers.CharField(
        max_length=TOPIC_DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False, default=""
    )
    is_public = serializers.BooleanField(
        default=True, help_text="Offered on the sign-up page and shown in the archive and feeds."
    )


class TopicChangeSerializer(serializers.Serializer[dict[str, Any]]):
    """A rename: name, description, visibility. The slug is refused, naming the field."""

    name = serializers.CharField(max_length=TOPIC_NAME_MAX_LENGTH, required=False)
    description = serializers.CharField(
        max_length=TOPIC_DESCRIPTION_MAX_LENGTH, allow_blank=True, required=False
    )
    is_public = serializers.BooleanField(required=False)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if hasattr(data, "get") and "slug" in data:
            raise serializers.ValidationError(
                {
                    "slug": [
                        "A topic's slug cannot change: it is in URLs, feeds and integrators' "
                        "data. Create another topic and archive this one instead."
                    ]
                }
            )
        checked: dict[str, Any] = super().to_internal_value(data)
        return checked


def _stamp(value: datetime | None) -> str | None:
    """DRF's DateTimeField output (ISO 8601, Z for UTC), without its per-field machinery."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: The columns the list reads with ``values()``: every list field but the topics.
LIST_FIELDS = (
    "id",
    "title",
    "slug",
    "summary",
    "language",
    "status",
    "publish_at",
    "published_at",
    "created_at",
    "updated_at",
)


def topic_slugs(rows: list[dict[str, Any]]) -> None:
    """Fill each row's topic slugs (by topic name) from one query, no model rows."""
    by_publication: dict[int, list[str]] = {row["id"]: [] for row in rows}
    through = Publication.topics.through.objects.filter(publication_id__in=list(by_publication))
    for publication_id, slug in through.order_by("topic__name", "topic_id").values_list(
        "publication_id", "topic__slug"
    ):
        by_publication[publication_id].append(slug)
    for row in rows:
        row["_topic_slugs"] = by_publication[row["id"]]


def list_item(row: dict[str, Any]) -> dict[str, Any]:
    """A list row (from ``values()``) as PublicationListSerializer represents a publication."""
    return {
        "id": row["id"],
        "title": row["title"],
        "slug": row["slug"],
        "summary": row["summary"],
        "topics": row["_topic_slugs"],
        "language": row["language"],
        "status": row["status"],
        "publish_at": _stamp(row["publish_at"]),
        "published_at": _stamp(row["published_at"]),
        "created_at": _stamp(row["created_at"]),
        "updated_at": _stamp(row["updated_at"]),
    }


class PublicationListSerializer(serializers.ModelSerializer[Publication]):
    topics: Any = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)

    def to_representation(self, instance: Publication) -> dict[str, Any]:
        # Hand-built: the list is the API's busiest read (see docs/performance.md, "API").
        slugs = getattr(instance, "_topic_slugs", None)
        if slugs is None:
            slugs = list(instance.topics.order_by("name", "pk").values_list("slug", flat=True))
        data = {
            "id": instance.pk,
            "title": instance.title,
            "slug": instance.slug,
            "summary": instance.summary,
            "topics": slugs,
            "language": instance.language,
            "status": instance.status,
            "publish_at": _stamp(instance.publish_at),
            "published_at": _stamp(instance.published_at),
            "created_at": _stamp(instance.created_at),
            "updated_at": _stamp(instance.updated_at),
        }
        if "body" in self.Meta.fields:
            data["body"] = instance.body
        return data

    class Meta:
        model = Publication
        fields = [
            "id",
            "title",
            "slug",
            "summary",
            "topics",
            "language",
            "status",
            "publish_at",
            "published_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class PublicationSerializer(PublicationListSerializer):
    class Meta(PublicationListSerializer.Meta):
        fields = [*PublicationListSerializer.Meta.fields, "body"]
        read_only_fields = fields


class PublicationWriteSerializer(serializers.Serializer[dict[str, Any]]):
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH, trim_whitespace=False)
    slug = serializers.SlugField(max_length=TITLE_MAX_LENGTH)
    summary = serializers.CharField(
        max_length=SUMMARY_MAX_LENGTH, allow_blank=True, required=False, default=""
    )
    body = serializers.CharField(max_length=BODY_MAX_LENGTH, help_text="Markdown.")
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=SLUG_MAX_LENGTH),
        min_length=MIN_TOPICS,
        max_length=MAX_TOPICS,
        help_text=f"Topic slugs, {MIN_TOPICS} to {MAX_TOPICS}.",
    )
    language = serializers.ChoiceField(choices=settings.LANGUAGES, default="en")
    change_reason = serializers.CharField(
        max_length=CHANGE_REASON_MAX_LENGTH, required=False, default="", allow_blank=True
    )


class ScheduleSerializer(serializers.Serializer[dict[str, Any]]):
    publish_at = serializers.DateTimeField(help_text="When to publish, with a time zone.")


class VersionSerializer(serializers.Serializer[Any]):
    number = serializers.IntegerField()
    title = serializers.CharField()
    summary = serializers.CharField()
    language = serializers.CharField()
    status = serializers.CharField()
    topics = serializers.ListField(child=serializers.CharField())
    reason = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()


DispatchRefSerializer = inline_serializer(
    "PublishResult",
    {"publication": PublicationSerializer(), "dispatch_id": serializers.IntegerField()},
)
