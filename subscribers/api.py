"""The public sign-up endpoint: POST /api/v1/subscribe (same service as the page)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from publishing.models import Topic
from subscribers import services
from subscribers.forms import NAME_MAX_LENGTH, public_topics, valid_timezone
from subscribers.limits import signup_rate_limited
from subscribers.models import EMAIL_MAX_LENGTH

MAX_TOPICS = 50
FORM_VERSION_MAX_LENGTH = 50
ACCEPTED = (
    "If this address can be subscribed, a message is on its way to it. "
    "Nothing is sent until the link in it is used."
)


class SubscribeSerializer(serializers.Serializer[dict[str, Any]]):
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True)
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=100), max_length=MAX_TOPICS, required=False
    )
    locale = serializers.ChoiceField(
        choices=[code for code, _ in settings.LANGUAGES], default=settings.LANGUAGE_CODE
    )
    timezone = serializers.CharField(max_length=64, default="UTC")
    form_version = serializers.CharField(
        max_length=FORM_VERSION_MAX_LENGTH,
        default="api",
        help_text="Which consent wording your form showed (kept in the consent log).",
    )

    def validate_timezone(self, value: str) -> str:
        if not valid_timezone(value):
            raise serializers.ValidationError(
                "Not an IANA time zone name (for example Europe/Paris)."
            )
        return value

    def validate_topics(self, value: list[str]) -> list[Topic]:
        wanted = list(dict.fromkeys(value))
        found = {topic.slug: topic for topic in public_topics().filter(slug__in=wanted)}
        unknown = [slug for slug in wanted if slug not in found]
        if unknown:
            raise serializers.ValidationError(f"No public topic with the slug {unknown[0]!r}.")
        return [found[slug] for slug in wanted]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("topics") and public_topics().exists():
            raise serializers.ValidationError({"topics": "Choose at least one topic."})
        return attrs


class SubscribeView(APIView):
    """Start a double opt-in. Answers 202 with the same body whatever the address's state."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        request=SubscribeSerializer,
        responses={
            202: inline_serializer("SubscribeAccepted", {"detail": serializers.CharField()}),
            400: None,
            429: None,
        },
    )
    def post(self, request: Request) -> Response:
        raw_email = request.data.get("email", "") if hasattr(request.data, "get") else ""
        if signup_rate_limited(request._request, str(raw_email)[:320]):
            return Response(
                {"detail": "Too many sign-ups from here or for this address. Try again later."},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": "60"},
            )
        serializer = SubscribeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        services.sign_up(
            email=data["email"],
            name=data.get("name", ""),
            topics=data.get("topics", []),
            locale=data["locale"],
            time_zone=data["timezone"],
            origin=services.Origin.from_request(
                request._request, via="api", form_version=data["form_version"]
            ),
        )
        return Response({"detail": ACCEPTED}, status=status.HTTP_202_ACCEPTED)
