"""The channels API: channel configuration (secrets write-only), test messages, and the
delivery ledger (dispatches, deliveries, retries). Writes call channels.configuration and
channels.services."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db import transaction
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import exceptions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from channels import services
from channels.backends import registry
from channels.configuration import MAX_BATCH_SIZE, masked_secrets, save_channel, send_test_message
from channels.event_models import EVENT_WEBHOOK_KIND
from channels.models import Channel, Delivery
from config.api.exceptions import ProblemError
from config.api.pagination import StableCursorPagination, StandardPagination
from config.api.permissions import has_scope
from config.api.schema import WRITE_ERRORS, document
from config.api.views import ApiViewMixin
from publishing.models import MAX_TOPICS, ApiScope, Dispatch, Topic

CHANNELS_ADMIN = ApiScope.CHANNELS_ADMIN.value
WEBHOOKS_ADMIN = ApiScope.WEBHOOKS_ADMIN.value
DELIVERIES_READ = ApiScope.DELIVERIES_READ.value
DELIVERIES_WRITE = ApiScope.DELIVERIES_WRITE.value
WEBHOOK_KINDS = frozenset({"webhook"})
MAX_SETTINGS = 30
SETTING_MAX_LENGTH = 2000
MAX_RATE_PER_SECOND = 100_000.0


# --- Channels ---------------------------------------------------------------------------------


class ChannelSerializer(serializers.ModelSerializer[Channel]):
    topics: Any = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    secrets = serializers.SerializerMethodField(
        help_text="Each stored secret, masked: secrets are write-only."
    )

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "kind",
            "is_enabled",
            "is_default_email",
            "config",
            "secrets",
            "topics",
            "rate_limit_per_second",
            "batch_size",
            "uncertain_policy",
            "tracking",
            "disabled_reason",
            "disabled_at",
            "circuit_state",
            "last_error",
            "last_error_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_secrets(self, channel: Channel) -> dict[str, str]:
        return masked_secrets(channel) if channel.secrets_encrypted else {}


class SettingValueField(serializers.JSONField):
    """A configuration value: a string, number or boolean of bounded size."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str) and len(data) > SETTING_MAX_LENGTH:
            raise serializers.ValidationError(
                f"Ensure this value has no more than {SETTING_MAX_LENGTH} characters."
            )
        if data is not None and not isinstance(data, str | int | float | bool):
            raise serializers.ValidationError("A setting is a string, a number or a boolean.")
        return data


def _bounded_dict(data: dict[str, Any]) -> None:
    if len(data) > MAX_SETTINGS:
        raise serializers.ValidationError(f"At most {MAX_SETTINGS} settings.")
    for key in data:
        if len(key) > 100:
            raise serializers.ValidationError("A setting name has at most 100 characters.")


class ChannelWriteSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(
        choices=sorted(kind for kind, backend in registry.items() if not backend.is_internal)
    )
    is_enabled = serializers.BooleanField(default=True)
    is_default_email = serializers.BooleanField(
        default=False,
        help_text="Email channels only: subscribers' mail and the site's mail go through this "
        "channel. Setting it unsets it on the previous default (one transaction). With no "
        "enabled default, the enabled email channel created first is used.",
    )
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=100), max_length=MAX_TOPICS, default=list
    )
    rate_limit_per_second = serializers.FloatField(
        min_value=0.001, max_value=MAX_RATE_PER_SECOND, allow_null=True, default=None
    )
    batch_size = serializers.IntegerField(min_value=1, max_value=MAX_BATCH_SIZE, default=100)
    uncertain_policy = serializers.ChoiceField(
        choices=["", "resend", "skip"],
        default="",
        allow_blank=True,
        help_text="What happens to a message handed over without an answer (a worker killed "
        "or a timeout after sending): resend (at least once) or skip (at most once; an operator "
        "may re-queue it). Empty: the kind's default, resend for email and webhooks, skip for "
        "Slack and Discord.",
    )
    tracking = serializers.BooleanField(
        default=False,
        help_text="Track opens and clicks: an open pixel and click redirects in email, click "
        "redirects in Slack and Discord posts (docs/analytics.md). Subscribers who opt out in "
        "their preferences get untracked mail.",
    )
    config = serializers.DictField(
        child=SettingValueField(), default=dict, validators=[_bounded_dict]
    )
    secrets = serializers.DictField(
        child=serializers.CharField(max_length=SETTING_MAX_LENGTH, allow_blank=True),
        default=dict,
        write_only=True,
        validators=[_bounded_dict],
        help_text="Write-only; an empty value keeps the stored secret.",
    )

    def validate_topics(self, value: list[str]) -> list[Topic]:
        wanted = list(dict.fromkeys(value))
        found = {topic.slug: topic for topic in Topic.objects.filter(slug__in=wanted)}
        unknown = [slug for slug in wanted if slug not in found]
        if unknown:
            raise serializers.ValidationError(f"No topic with the slug {unknown[0]!r}.")
        return [found[slug] for slug in wanted]


class TestMessageSerializer(serializers.Serializer[dict[str, Any]]):
    to = serializers.EmailField(
        max_length=254,
        required=False,
        default="",
        allow_blank=True,
        help_text="Email channels only: where to send the test.",
    )


TestOutcomeSerializer = inline_serializer(
    "TestOutcome",
    {
        "status": serializers.ChoiceField(
            choices=["sent", "transient", "permanent", "rate_limited", "uncertain"]
        ),
        "provider_message_id": serializers.CharField(),
        "error": serializers.CharField(),
    },
)
WEBHOOK_EXAMPLE = OpenApiExample(
    "A signed webhook",
    value={
        "name": "CRM webhook",
        "kind": "webhook",
        "topics": ["news"],
        "config": {"url": "https://crm.example.com/hooks/publishing"},
        "secrets": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
    },
    request_only=True,
)


class ChannelViewSet(ApiViewMixin, viewsets.ModelViewSet[Channel]):
    """Channels. channels:admin reaches every channel; webhooks:admin only webhook channels
    (others answer 404 to it)."""

    serializer_class = ChannelSerializer
    pagination_class = StandardPagination
    required_scopes: dict[str, str | tuple[str, ...]] = dict.fromkeys(
        ("list", "retrieve", "create", "update", "partial_update", "destroy", "test"),
        (CHANNELS_ADMIN, WEBHOOKS_ADMIN),
    )
    last_modified_field = "updated_at"

    def get_queryset(self) -> QuerySet[Channel]:
        queryset = Channel.objects.prefetch_related(
            Prefetch("topics", queryset=Topic.objects.only("pk", "slug"))
        ).order_by("name", "pk")
        # Event endpoints' channels are managed as webhook endpoints (/api/v1/webhook-endpoints/).
        queryset = queryset.exclude(kind=EVENT_WEBHOOK_KIND)
        if not has_scope(self.request, CHANNELS_ADMIN):
            queryset = queryset.filter(kind__in=WEBHOOK_KINDS)
        return queryset

    def _check_kind(self, kind: str) -> None:
        if kind not in WEBHOOK_KINDS and not has_scope(self.request, CHANNELS_ADMIN):
            raise exceptions.PermissionDenied(
                "This API key lacks the scope channels:admin (webhooks:admin covers webhooks)."
            )

    def _detail(self, channel: Channel, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=channel.pk)).data, code)

    def _save(self, channel: Channel, data: dict[str, Any], settings: dict[str, Any]) -> None:
        with transaction.atomic():
            save_channel(channel, settings)
            if "topics" in data:
                channel.topics.set(data["topics"])

    @document(
        summary="List channels",
        description="Secrets are shown masked. Needs channels:admin (or webhooks:admin, which "
        "lists webhook channels only).",
        responses={200: ChannelSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="Read a channel",
        description="Secrets are shown masked. Needs channels:admin or, for a webhook, "
        "webhooks:admin.",
        responses={200: ChannelSerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Create a channel",
        description="`config` and `secrets` are checked against the kind's schema; each bad "
        "field is named. Secrets are stored encrypted and never shown back. Needs "
        "channels:admin (webhooks:admin for a webhook).",
        request=ChannelWriteSerializer,
        responses={201: ChannelSerializer},
        errors=WRITE_ERRORS,
        examples=[WEBHOOK_EXAMPLE],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ChannelWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self._check_kind(data["kind"])
        if Channel.objects.filter(name=data["name"]).exists():
            raise serializers.ValidationError({"name": ["Another channel has this name."]})
        channel = Channel(
            name=data["name"],
            kind=data["kind"],
            is_enabled=data["is_enabled"],
            is_default_email=data["is_default_email"],
            rate_limit_per_second=data["rate_limit_per_second"],
            batch_size=data["batch_size"],
            uncertain_policy=data["uncertain_policy"],
            tracking=data["tracking"],
        )
        self._save(channel, data, {**data["config"], **data["secrets"]})
        response = self._detail(channel, status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/channels/{channel.pk}/"
        return response

    def _update(self, request: Request, *, partial: bool) -> Response:
        channel = self.get_object()
        serializer = ChannelWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("kind", channel.kind) != channel.kind:
            raise serializers.ValidationError(
                {"kind": ["The kind of a channel cannot change: create another channel."]}
            )
        name = data.get("name", channel.name)
        if Channel.objects.filter(name=name).exclude(pk=channel.pk).exists():
            raise serializers.ValidationError({"name": ["Another channel has this name."]})
        channel.name = name
        fields = (
            "is_enabled",
            "is_default_email",
            "rate_limit_per_second",
            "batch_size",
            "uncertain_policy",
            "tracking",
        )
        for field in fields:
            if field in data:
                setattr(channel, field, data[field])
        config = {**channel.config, **data.get("config", {})} if partial else data["config"]
        self._save(channel, data, {**config, **data.get("secrets", {})})
        return self._detail(channel)

    @document(
        summary="Replace a channel's settings",
        description="Every field; a secret left out or empty keeps its stored value. Honours "
        "If-Match. Needs channels:admin (webhooks:admin for a webhook).",
        request=ChannelWriteSerializer,
        responses={200: ChannelSerializer},
        errors=WRITE_ERRORS,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=False)

    @document(
        summary="Change some of a channel's settings",
        description="Only the fields sent change; `config` is merged. Honours If-Match.",
        request=ChannelWriteSerializer(partial=True),
        responses={200: ChannelSerializer},
        errors=WRITE_ERRORS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=True)

    @document(
        summary="Delete a channel",
        description="Only a channel that never delivered anything: one with deliveries is part "
        "of the ledger (409; disable it instead).",
        responses={204: None},
        errors=WRITE_ERRORS,
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        channel = self.get_object()
        if Delivery.objects.filter(channel=channel).exists():
            raise ProblemError(
                "This channel has deliveries in the ledger: disable it instead.",
                code="channel_in_use",
                status_code=409,
            )
        channel.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)

    @document(
        summary="Send a test message",
        description="Sends a sample publication through the channel; nothing is written to the "
        "ledger. Email channels need `to`. Answers the provider's outcome.",
        request=TestMessageSerializer,
        responses={200: TestOutcomeSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        channel = self.get_object()
        serializer = TestMessageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        outcome = send_test_message(channel, to=serializer.validated_data["to"])
        return Response(
            {
                "status": str(outcome.status),
                "provider_message_id": outcome.provider_message_id,
                "error": outcome.error,
            }
        )


# --- Dispatches and deliveries ----------------------------------------------------------------


class DispatchSerializer(serializers.ModelSerializer[Dispatch]):
    version = serializers.IntegerField(
        source="version_number",
        read_only=True,
        help_text="The number of the version sent, within its publication (1, 2, 3...), as "
        "`GET /api/v1/publications/{id}/versions/` numbers them.",
    )

    class Meta:
        model = Dispatch
        fields = [
            "id",
            "publication",
            "version",
            "kind",
            "status",
            "created_at",
            "planned_at",
            "finished_at",
        ]
        read_only_fields = fields


class DispatchFilter(django_filters.FilterSet):  # type: ignore[misc]
    status = django_filters.ChoiceFilter(choices=Dispatch.Status.choices)

    class Meta:
        model = Dispatch
        fields = ["status", "publication"]


class DispatchViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet[Dispatch]):
    serializer_class = DispatchSerializer
    pagination_class = StableCursorPagination
    filterset_class = DispatchFilter
    required_scopes = {"list": DELIVERIES_READ, "retrieve": DELIVERIES_READ}
    last_modified_field = None

    def get_queryset(self) -> QuerySet[Dispatch]:
        return Dispatch.objects.order_by("-id")

    @document(
        summary="List dispatches",
        description="Each send of a publication, newest first, by cursor; filter by `status` "
        "and `publication`. Needs deliveries:read.",
        responses={200: DispatchSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="Read a dispatch",
        description="One dispatch. Needs deliveries:read.",
        responses={200: DispatchSerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    class Meta:
        model = Delivery
        fields = [
            "id",
            "kind",
            "dispatch",
            "channel",
            "subscriber",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "provider_message_id",
            "created_at",
            "updated_at",
            "sent_at",
            "uncertain_at",
        ]
        read_only_fields = fields


class DeliveryFilter(django_filters.FilterSet):  # type: ignore[misc]
    status = django_filters.ChoiceFilter(choices=Delivery.Status.choices)
    uncertain = django_filters.BooleanFilter(
        field_name="uncertain_at",
        lookup_expr="isnull",
        exclude=True,
        label="true: deliveries handed over at least once without an answer (resent or not).",
    )

    class Meta:
        model = Delivery
        fields = ["status", "channel", "dispatch", "uncertain"]


RetryResultSerializer = inline_serializer(
    "RetryResult", {"requeued": serializers.IntegerField(), "delivery": DeliverySerializer()}
)


class DeliveryViewSet(ApiViewMixin, viewsets.ReadOnlyModelViewSet[Delivery]):
    serializer_class = DeliverySerializer
    pagination_class = StableCursorPagination
    filterset_class = DeliveryFilter
    required_scopes = {
        "list": DELIVERIES_READ,
        "retrieve": DELIVERIES_READ,
        "retry": DELIVERIES_WRITE,
    }

    def get_queryset(self) -> QuerySet[Delivery]:
        # The stored message of site mail is never read here.
        return Delivery.objects.defer("raw_message", "recipient").order_by("-id")

    @document(
        summary="List deliveries",
        description="The ledger, newest first, by cursor; filter by `status`, `channel`, "
        "`dispatch` and `uncertain` (true: handed over at least once without an answer; "
        "`status=uncertain`: those a skip policy did not send again). Needs deliveries:read.",
        responses={200: DeliverySerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="Read a delivery",
        description="One delivery. Needs deliveries:read.",
        responses={200: DeliverySerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Retry a failed, dead or uncertain delivery",
        description="Queues it again with fresh attempts (the admin's re-queue). An uncertain "
        "one may then arrive twice. A delivery that is not failed, dead or uncertain answers "
        "409. Needs deliveries:write.",
        request=None,
        responses={200: RetryResultSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        delivery = self.get_object()
        count = services.requeue_deliveries([delivery.pk])
        if not count:
            raise ProblemError(
                "Only a failed, dead or uncertain delivery can be retried; this one is "
                f"{delivery.status}.",
                code="not_retryable",
                status_code=409,
            )
        fresh = self.get_queryset().get(pk=delivery.pk)
        return Response({"requeued": count, "delivery": DeliverySerializer(fresh).data})
