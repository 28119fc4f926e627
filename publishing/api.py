"""The publications API: topics, publications, their versions and publishing.

Every write calls publishing.services (topics: publishing.topics); the serializers
(publishing.serializers) only check shapes and limits. A publication's delivery statistics need
the delivery ledger, so the engine answers them (channels.api_stats): publishing never imports
the engine.
"""

from __future__ import annotations

import builtins
from typing import Any

import django_filters
from django.contrib.postgres.expressions import ArraySubquery
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, OuterRef, QuerySet, Window
from drf_spectacular.utils import OpenApiExample
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from config.api.pagination import StandardPagination
from config.api.schema import WRITE_ERRORS, document
from config.api.views import ApiViewMixin
from publishing import services
from publishing import topics as topic_services
from publishing.models import ApiScope, Publication, Topic
from publishing.serializers import (
    AB_FIELDS,
    LIST_FIELDS,
    SLUG_MAX_LENGTH,
    DispatchRefSerializer,
    PublicationListSerializer,
    PublicationSerializer,
    PublicationWriteSerializer,
    ScheduleSerializer,
    TopicChangeSerializer,
    TopicCreateSerializer,
    TopicSerializer,
    VersionSerializer,
    list_item,
    topic_slugs,
)

READ = ApiScope.PUBLICATIONS_READ.value
WRITE = ApiScope.PUBLICATIONS_WRITE.value
PUBLISH = ApiScope.PUBLICATIONS_PUBLISH.value
MAX_PAGE_NUMBER = 100_000


# --- Topics -----------------------------------------------------------------------------------


class TopicFilter(django_filters.FilterSet):  # type: ignore[misc]
    archived = django_filters.BooleanFilter(
        field_name="archived_at", lookup_expr="isnull", exclude=True, label="Archived or not."
    )

    class Meta:
        model = Topic
        fields = ["archived"]


class TopicViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Topic],
):
    """Topics: read with publications:read; create, rename and archive with
    publications:write, through publishing.topics (the slug never changes)."""

    queryset = Topic.objects.order_by("name", "pk")
    serializer_class = TopicSerializer
    pagination_class = StandardPagination
    filterset_class = TopicFilter
    required_scopes = {
        "list": READ,
        "retrieve": READ,
        "create": WRITE,
        "partial_update": WRITE,
        "archive": WRITE,
        "unarchive": WRITE,
    }
    http_method_names = ["get", "post", "patch", "head", "options"]

    def _detail(self, topic: Topic, code: int = status.HTTP_200_OK) -> Response:
        return Response(TopicSerializer(Topic.objects.get(pk=topic.pk)).data, status=code)

    @document(
        summary="List topics",
        description="Every topic, by name, archived ones included (`archived=false` leaves "
        "them out). Needs publications:read.",
        responses={200: TopicSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="Read a topic",
        description="One topic. Needs publications:read.",
        responses={200: TopicSerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Create a topic",
        description="A public topic is offered on the sign-up page at once. The slug is set "
        "here for good. Accepts Idempotency-Key. Needs publications:write.",
        request=TopicCreateSerializer,
        responses={201: TopicSerializer},
        errors=WRITE_ERRORS,
        examples=[
            OpenApiExample(
                "A topic",
                value={"name": "Security", "slug": "security", "description": "Advisories."},
                request_only=True,
            )
        ],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = TopicCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        topic = topic_services.create_topic(
            topic_services.TopicInput(
                name=data["name"],
                slug=data["slug"],
                description=data["description"],
                is_public=data["is_public"],
            ),
            by=self.actor(),
        )
        response = self._detail(topic, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/topics/{topic.pk}/"
        return response

    @document(
        summary="Rename a topic",
        description="Changes the name, description or visibility; fields not sent keep their "
        "value. The slug cannot change (400 naming `slug`): it is in URLs, feeds and your data; "
        "create another topic and archive this one instead. Honours If-Match. "
        "Needs publications:write.",
        request=TopicChangeSerializer,
        responses={200: TopicSerializer},
        errors=WRITE_ERRORS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        topic = self.get_object()
        serializer = TopicChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        topic_services.update_topic(
            topic,
            by=self.actor(),
            name=data.get("name"),
            description=data.get("description"),
            is_public=data.get("is_public"),
        )
        return self._detail(topic)

    @document(
        summary="Archive a topic",
        description="Stops offering the topic: it leaves the sign-up page and API and the "
        "archive's topic list. Existing subscriptions, its page and its feed stay. Archiving "
        "twice keeps the first date. Needs publications:write.",
        request=None,
        responses={200: TopicSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str | None = None) -> Response:
        topic = self.get_object()
        topic_services.archive_topic(topic, by=self.actor())
        return self._detail(topic)

    @document(
        summary="Unarchive a topic",
        description="Offers an archived topic again. Needs publications:write.",
        request=None,
        responses={200: TopicSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def unarchive(self, request: Request, pk: str | None = None) -> Response:
        topic = self.get_object()
        topic_services.unarchive_topic(topic, by=self.actor())
        return self._detail(topic)


# --- Publications -----------------------------------------------------------------------------


class CountingPaginator(Paginator):  # type: ignore[type-arg]
    """Reads the total from a window count in the page's own query (one query instead of two);
    asks COUNT(*) only when the page is empty."""

    def page(self, number: Any) -> Any:
        try:
            index = max(int(number), 1)
        except (TypeError, ValueError):
            return super().page(number)
        if index > MAX_PAGE_NUMBER:
            # Counting first turns an absurd page into a 404 instead of a database error.
            return super().page(number)
        bottom = (index - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page])
        if not rows:
            return super().page(number)
        first = rows[0]
        total = first["window_total"] if isinstance(first, dict) else first.window_total
        self.__dict__["count"] = total  # cached_property's slot
        self.validate_number(index)
        return self._get_page(rows, index, self)  # type: ignore[attr-defined]


class PublicationPagination(StandardPagination):
    django_paginator_class = CountingPaginator


class PublicationFilter(django_filters.FilterSet):  # type: ignore[misc]
    status = django_filters.ChoiceFilter(choices=Publication.Status.choices)
    # Topic slugs are unique: at most one joined row per publication, no DISTINCT needed.
    topic = django_filters.CharFilter(field_name="topics__slug", max_length=SLUG_MAX_LENGTH)

    class Meta:
        model = Publication
        fields = ["status", "topic"]


PUBLICATION_EXAMPLE = OpenApiExample(
    "A draft",
    value={
        "title": "Autumn release",
        "slug": "autumn-release",
        "summary": "What changed this autumn.",
        "body": "# Autumn\n\nEverything new.",
        "topics": ["news"],
        "language": "en",
    },
    request_only=True,
)


class PublicationViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Publication],
):
    pagination_class = PublicationPagination
    filterset_class = PublicationFilter
    required_scopes = {
        "list": READ,
        "retrieve": READ,
        "versions": READ,
        "create": WRITE,
        "update": WRITE,
        "partial_update": WRITE,
        "destroy": WRITE,
        "restore": WRITE,
        "publish": PUBLISH,
        "schedule": PUBLISH,
        "unschedule": PUBLISH,
    }

    def get_queryset(self) -> QuerySet[Publication]:
        if self.action == "list":
            queryset = Publication.objects.order_by("-created_at", "-pk").defer("body")
            queryset = queryset.annotate(window_total=Window(Count("pk")))
        else:
            queryset = Publication.objects.all()  # one object: no ORDER BY to build
        if connection.vendor != "postgresql":
            return queryset  # topics: one more query (topic_slugs), or the related manager
        # The topics' slugs in the same query as the publications.
        slugs = Publication.topics.through.objects.filter(publication_id=OuterRef("pk")).order_by(
            "topic__name", "topic_id"
        )
        return queryset.annotate(_topic_slugs=ArraySubquery(slugs.values("topic__slug")))

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        # Reads and the If-Match check see the same representation, whatever the action.
        return PublicationListSerializer if self.action == "list" else PublicationSerializer

    def _detail(self, publication: Publication, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=publication.pk)
        return Response(PublicationSerializer(fresh).data, status=code)

    def _input(self, data: dict[str, Any]) -> services.PublicationInput:
        return services.PublicationInput(
            title=data["title"],
            slug=data["slug"],
            summary=data.get("summary", ""),
            body=data["body"],
            topics=list(data["topics"]),
            language=data.get("language", "en"),
            **{name: data[name] for name in AB_FIELDS if name in data},
        )

    @document(
        summary="List publications",
        description="Newest first, 50 a page; filter by `status` and `topic` (a slug). "
        "Needs publications:read.",
        responses={200: PublicationListSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        with_slugs = connection.vendor == "postgresql"
        fields = [*LIST_FIELDS, "window_total", *(["_topic_slugs"] if with_slugs else [])]
        # Plain rows, not model instances: the list is the API's busiest read.
        page = list(self.paginate_queryset(queryset.values(*fields)) or [])
        if not with_slugs:
            topic_slugs(page)
        return self.get_paginated_response([list_item(row) for row in page])

    @document(
        summary="Read a publication",
        description="One publication with its body. Sends ETag and Last-Modified; answers 304 "
        "to If-None-Match or If-Modified-Since. Needs publications:read.",
        responses={200: PublicationSerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Create a draft",
        description="Creates a draft and its first version. Accepts Idempotency-Key. "
        "Needs publications:write.",
        request=PublicationWriteSerializer,
        responses={201: PublicationSerializer},
        errors=WRITE_ERRORS,
        examples=[PUBLICATION_EXAMPLE],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = PublicationWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        publication = services.create_publication(
            self._input(data), by=self.actor(), reason=data.get("change_reason", "")
        )
        response = self._detail(publication, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/publications/{publication.pk}/"
        return response

    def _update(self, request: Request, *, partial: bool) -> Response:
        publication = self.get_object()
        serializer = PublicationWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        current = {
            "title": publication.title,
            "slug": publication.slug,
            "summary": publication.summary,
            "body": publication.body,
            "topics": [topic.slug for topic in publication.topics.all()],
            "language": publication.language,
            **services.ab_test_input(publication),
        }
        data = {**current, **serializer.validated_data}
        services.update_publication(
            publication, self._input(data), by=self.actor(), reason=data.get("change_reason", "")
        )
        return self._detail(publication)

    @document(
        summary="Replace a publication's content",
        description="Every editable field; one new version. Send If-Match with the ETag you "
        "read: a stale one answers 412. Needs publications:write.",
        request=PublicationWriteSerializer,
        responses={200: PublicationSerializer},
        errors=WRITE_ERRORS,
        examples=[PUBLICATION_EXAMPLE],
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=False)

    @document(
        summary="Change some fields of a publication",
        description="Only the fields sent change; one new version. Honours If-Match. "
        "Needs publications:write.",
        request=PublicationWriteSerializer(partial=True),
        responses={200: PublicationSerializer},
        errors=WRITE_ERRORS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=True)

    @document(
        summary="Delete a draft",
        description="Only drafts never sent can be deleted (409 otherwise). Honours If-Match. "
        "Needs publications:write.",
        responses={204: None},
        errors=WRITE_ERRORS,
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.delete_draft(self.get_object(), by=self.actor())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @document(
        summary="Publish now",
        description="Publishes and starts the one dispatch of this publication; publishing "
        "again returns the same dispatch. Needs publications:publish.",
        request=None,
        responses={200: DispatchRefSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        publication = self.get_object()
        dispatch = services.publish(publication, by=self.actor())
        fresh = self.get_queryset().get(pk=publication.pk)
        return Response(
            {"publication": PublicationSerializer(fresh).data, "dispatch_id": dispatch.pk}
        )

    @document(
        summary="Schedule",
        description="Publishes at `publish_at`, a future time with a time zone. "
        "Needs publications:publish.",
        request=ScheduleSerializer,
        responses={200: PublicationSerializer},
        errors=WRITE_ERRORS,
        examples=[
            OpenApiExample(
                "Tomorrow morning",
                value={"publish_at": "2030-01-01T09:00:00+01:00"},
                request_only=True,
            )
        ],
    )
    @action(detail=True, methods=["post"])
    def schedule(self, request: Request, pk: str | None = None) -> Response:
        publication = self.get_object()
        serializer = ScheduleSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.schedule(publication, serializer.validated_data["publish_at"], by=self.actor())
        return self._detail(publication)

    @document(
        summary="Unschedule",
        description="Takes a scheduled publication back to draft. Needs publications:publish.",
        request=None,
        responses={200: PublicationSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def unschedule(self, request: Request, pk: str | None = None) -> Response:
        publication = self.get_object()
        services.unschedule(publication, by=self.actor())
        return self._detail(publication)

    def _versions(self, publication: Publication) -> builtins.list[Any]:
        history_model: Any = Publication.history.model
        history = list(history_model.objects.filter(id=publication.pk).order_by("history_id"))
        topic_rows = history_model._meta.get_field("historicalpublication_topics").related_model
        # Three queries whatever the number of versions: rows, their topics, the topics' slugs.
        by_version: dict[int, builtins.list[int]] = {}
        for history_id, topic_id in topic_rows.objects.filter(
            history_id__in=[version.history_id for version in history]
        ).values_list("history_id", "topic_id"):
            by_version.setdefault(history_id, []).append(topic_id)
        topic_ids = {topic_id for ids in by_version.values() for topic_id in ids}
        names = dict(Topic.objects.filter(pk__in=topic_ids).values_list("pk", "slug"))
        return [
            {
                "number": number,
                "title": version.title,
                "summary": version.summary,
                "language": version.language,
                "status": version.status,
                "topics": sorted(
                    names.get(topic_id, f"(deleted {topic_id})")
                    for topic_id in by_version.get(version.history_id, [])
                ),
                "reason": version.history_change_reason,
                "created_at": version.history_date,
            }
            for number, version in enumerate(history, start=1)
        ][::-1]

    @document(
        summary="List versions",
        description="Every version, newest first, numbered from 1. Needs publications:read.",
        responses={200: VersionSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def versions(self, request: Request, pk: str | None = None) -> Response:
        publication = self.get_object()
        paginator = StandardPagination()
        versions: Any = self._versions(publication)
        page: Any = paginator.paginate_queryset(versions, request, view=self)
        return paginator.get_paginated_response(VersionSerializer(page, many=True).data)

    @document(
        summary="Restore a version",
        description="Makes version `number` current again, as a new version (history is "
        "never rewritten). Needs publications:write.",
        request=None,
        responses={200: PublicationSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]{1,6})/restore")
    def restore(self, request: Request, pk: str | None = None, number: str = "0") -> Response:
        publication = self.get_object()
        history = publication.history.order_by("history_id")
        index = int(number) - 1
        version = history[index : index + 1].first() if index >= 0 else None
        if version is None:
            raise serializers.ValidationError({"number": ["No such version."]})
        services.restore_version(publication, version, by=self.actor())
        return self._detail(publication)
