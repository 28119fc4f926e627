"""The API of event webhook endpoints (decision 0084), scope ``webhooks:admin``: create (the
secret shown once), read (masked), change, delete, rotate the secret, replay events and read
the recent attempts. Writes call channels.webhook_events."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from channels import webhook_events
from channels.configuration import masked_secrets
from channels.models import EventAttempt, WebhookEndpoint
from config.api.pagination import StandardPagination
from config.api.schema import WRITE_ERRORS, document
from config.api.views import ApiViewMixin
from events.models import EventType
from publishing.models import ApiScope

WEBHOOKS_ADMIN = ApiScope.WEBHOOKS_ADMIN.value
ATTEMPTS_SHOWN = 50


class WebhookEndpointSerializer(serializers.ModelSerializer[WebhookEndpoint]):
    url = serializers.CharField(read_only=True)
    is_enabled = serializers.BooleanField(read_only=True)
    secret = serializers.SerializerMethodField(
        help_text="The signing secret, masked: it is shown in full only when created or rotated."
    )
    previous_secret_until = serializers.SerializerMethodField(
        help_text="Until when deliveries are also signed with the previous secret (after a "
        "rotation), else null."
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "include_machine_events",
            "is_enabled",
            "secret",
            "previous_secret_until",
            "failing_since",
            "last_success_at",
            "disabled_at",
            "disabled_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_secret(self, endpoint: WebhookEndpoint) -> str:
        return masked_secrets(endpoint.channel).get("secret", "")

    def get_previous_secret_until(self, endpoint: WebhookEndpoint) -> str | None:
        until = webhook_events.previous_secret_until(endpoint)
        return until.isoformat() if until else None


class WebhookEndpointWriteSerializer(serializers.Serializer[Any]):
    url = serializers.CharField(
        max_length=500, help_text="https URL of a public address; checked again on each request."
    )
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EventType.values),
        min_length=1,
        max_length=len(EventType.values),
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    include_machine_events = serializers.BooleanField(required=False, default=False)
    is_enabled = serializers.BooleanField(required=False, default=True)
    secret = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        write_only=True,
        help_text="Create only: a whsec_ secret of your own; empty: one is generated.",
    )
    timeout = serializers.FloatField(required=False, min_value=0.1, max_value=60)


class ReplaySerializer(serializers.Serializer[Any]):
    event_id = serializers.CharField(
        max_length=30, required=False, help_text="One event to send again (evt_123)."
    )
    since = serializers.DateTimeField(
        required=False, help_text="Send again every event since then that failed or died."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if bool(attrs.get("event_id")) == bool(attrs.get("since")):
            raise serializers.ValidationError(
                {"event_id": ["Give either event_id or since (one of them)."]}
            )
        return attrs


class EventAttemptSerializer(serializers.ModelSerializer[EventAttempt]):
    event_id = serializers.SerializerMethodField()

    class Meta:
        model = EventAttempt
        fields = [
            "event_id",
            "attempted_at",
            "outcome",
            "status_code",
            "latency_ms",
            "response_excerpt",
            "error",
        ]
        read_only_fields = fields

    def get_event_id(self, attempt: EventAttempt) -> str:
        return f"evt_{attempt.event_id}"


CreatedSerializer = inline_serializer(
    "WebhookEndpointCreated",
    {"endpoint": WebhookEndpointSerializer(), "secret": serializers.CharField()},
)
RotatedSerializer = inline_serializer(
    "WebhookSecretRotated",
    {"secret": serializers.CharField(), "previous_secret_until": serializers.DateTimeField()},
)
ReplayedSerializer = inline_serializer("EventsReplayed", {"replayed": serializers.IntegerField()})
ENDPOINT_EXAMPLE = OpenApiExample(
    "An endpoint for subscriber changes",
    value={
        "url": "https://example.com/hooks/publishing",
        "event_types": ["subscriber.created", "subscriber.unsubscribed", "subscriber.erased"],
        "description": "CRM sync",
    },
    request_only=True,
)


class WebhookEndpointViewSet(ApiViewMixin, viewsets.ModelViewSet[WebhookEndpoint]):
    """Event webhook endpoints; every action needs webhooks:admin."""

    serializer_class = WebhookEndpointSerializer
    pagination_class = StandardPagination
    required_scopes: dict[str, str | tuple[str, ...]] = dict.fromkeys(
        (
            "list",
            "retrieve",
            "create",
            "update",
            "partial_update",
            "destroy",
            "rotate_secret",
            "replay",
            "attempts",
        ),
        WEBHOOKS_ADMIN,
    )

    def get_queryset(self) -> QuerySet[WebhookEndpoint]:
        return WebhookEndpoint.objects.select_related("channel").order_by("pk")

    def _detail(self, endpoint: WebhookEndpoint) -> dict[str, Any]:
        return dict(WebhookEndpointSerializer(self.get_queryset().get(pk=endpoint.pk)).data)

    @document(
        summary="List event webhook endpoints",
        description="Secrets are shown masked. Needs webhooks:admin.",
        responses={200: WebhookEndpointSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="Read an event webhook endpoint",
        description="Its failing streak and why it was disabled, if it was. Needs webhooks:admin.",
        responses={200: WebhookEndpointSerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Create an event webhook endpoint",
        description="The URL must reach a public address (private, loopback, link-local and "
        "metadata addresses are refused, now and on every request). The answer carries the "
        "whsec_ signing secret in full, this once. Needs webhooks:admin.",
        request=WebhookEndpointWriteSerializer,
        responses={201: CreatedSerializer},
        errors=WRITE_ERRORS,
        examples=[ENDPOINT_EXAMPLE],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = WebhookEndpointWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        owner = request.user if getattr(request.user, "is_authenticated", False) else None
        endpoint, secret = webhook_events.create_endpoint(
            webhook_events.EndpointInput(
                url=data["url"],
                event_types=data["event_types"],
                description=data.get("description", ""),
                include_machine_events=data["include_machine_events"],
                is_enabled=data["is_enabled"],
                owner_id=getattr(owner, "pk", None),
                timeout=data.get("timeout"),
            ),
            secret=data.get("secret", ""),
        )
        response = Response(
            {"endpoint": self._detail(endpoint), "secret": secret}, status.HTTP_201_CREATED
        )
        response["Location"] = f"/api/v1/webhook-endpoints/{endpoint.pk}/"
        return response

    def _update(self, request: Request, *, partial: bool) -> Response:
        endpoint = self.get_object()
        serializer = WebhookEndpointWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        if changes.pop("secret", ""):
            raise serializers.ValidationError(
                {"secret": ["A secret changes by rotation: POST .../rotate-secret/."]}
            )
        webhook_events.update_endpoint(endpoint, **changes)
        return Response(self._detail(endpoint))

    @document(
        summary="Replace an event webhook endpoint's settings",
        description="URL, event types, description, machine events, enabled flag and timeout "
        "(the secret changes by rotation). Enabling a disabled endpoint clears its failing "
        "streak. Honours If-Match. Needs webhooks:admin.",
        request=WebhookEndpointWriteSerializer,
        responses={200: WebhookEndpointSerializer},
        errors=WRITE_ERRORS,
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=False)

    @document(
        summary="Change some of an event webhook endpoint's settings",
        description="Only the fields sent change. Honours If-Match. Needs webhooks:admin.",
        request=WebhookEndpointWriteSerializer(partial=True),
        responses={200: WebhookEndpointSerializer},
        errors=WRITE_ERRORS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._update(request, partial=True)

    @document(
        summary="Delete an event webhook endpoint",
        description="With its queued deliveries and its attempts. Needs webhooks:admin.",
        responses={204: None},
        errors=WRITE_ERRORS,
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        webhook_events.delete_endpoint(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @document(
        summary="Rotate an endpoint's signing secret",
        description="A new whsec_ secret, shown this once; for the next 24 hours deliveries are "
        "signed with the new and the previous secret (two signatures in webhook-signature). "
        "Needs webhooks:admin.",
        request=None,
        responses={200: RotatedSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        secret = webhook_events.rotate_secret(endpoint)
        until = webhook_events.previous_secret_until(endpoint)
        return Response(
            {"secret": secret, "previous_secret_until": until.isoformat() if until else None}
        )

    @document(
        summary="Replay events to an endpoint",
        description="`event_id`: that event again (or for the first time); `since`: every event "
        "since then that the endpoint did not take (failed, dead or uncertain). Each gets a "
        "fresh schedule of attempts. Needs webhooks:admin.",
        request=ReplaySerializer,
        responses={200: ReplayedSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        serializer = ReplaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("event_id"):
            webhook_events.replay_event(endpoint, data["event_id"])
            return Response({"replayed": 1})
        return Response({"replayed": webhook_events.replay_failed_since(endpoint, data["since"])})

    @document(
        summary="An endpoint's recent attempts",
        description=f"The last {ATTEMPTS_SHOWN} attempts, newest first: outcome, HTTP status, "
        "latency and the first characters of the answer. Needs webhooks:admin.",
        responses={200: EventAttemptSerializer(many=True)},
    )
    @action(detail=True, methods=["get"])
    def attempts(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        rows = EventAttempt.objects.filter(endpoint=endpoint).order_by("-attempted_at", "-pk")
        return Response(EventAttemptSerializer(rows[:ATTEMPTS_SHOWN], many=True).data)
