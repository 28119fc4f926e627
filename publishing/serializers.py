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
    AB_MAX_SUBJECTS,
    AB_MIN_SAMPLE_MAX,
    AB_MIN_SAMPLE_MIN,
    AB_MIN_SUBJECTS,
    AB_SHARE_MAX,
    AB_SHARE_MIN,
    AB_SUBJECT_MAX_LENGTH,
    AB_WAIT_MAX_HOURS,
    AB_WAIT_MIN_HOURS,
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
            data.update({name: getattr(instance, name) for name in AB_FIELDS})
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


#: The A/B subject test's fields (decision 0079), read and written as they are.
AB_FIELDS = ("subjects", "ab_share", "ab_wait_hours", "ab_metric", "ab_min_sample")


class PublicationSerializer(PublicationListSerializer):
    subjects = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta(PublicationListSerializer.Meta):
        fields = [*PublicationListSerializer.Meta.fields, "body", *AB_FIELDS]
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
    subjects = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False, allow_blank=True),
        required=False,
        help_text=f"A/B subjects: none (the title is the subject), or {AB_MIN_SUBJECTS} to "
        f"{AB_MAX_SUBJECTS} distinct subjects of 1 to {AB_SUBJECT_MAX_LENGTH} characters; "
        "the first goes to the rest when no subject wins. Omitted: unchanged.",
    )
    ab_share = serializers.IntegerField(
        min_value=AB_SHARE_MIN,
        max_value=AB_SHARE_MAX,
        required=False,
        help_text="Percent of the email audience that gets the A/B test.",
    )
    ab_wait_hours = serializers.IntegerField(
        min_value=AB_WAIT_MIN_HOURS,
        max_value=AB_WAIT_MAX_HOURS,
        required=False,
        help_text="Hours between the test and the decision.",
    )
    ab_metric = serializers.ChoiceField(
        choices=Publication.AbMetric.choices,
        required=False,
        help_text="The winner by people's click rate or open rate.",
    )
    ab_min_sample = serializers.IntegerField(
        min_value=AB_MIN_SAMPLE_MIN,
        max_value=AB_MIN_SAMPLE_MAX,
        required=False,
        help_text="Delivered test messages each subject needs before one may win.",
    )
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
