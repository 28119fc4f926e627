"""The public sign-up endpoint POST /api/v1/subscribe (open, the same service as the page), and
the integrators' subscribers API under /api/v1/subscribers/ (API keys with scopes)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import django_filters
from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.exceptions import ProblemError
from config.api.pagination import StableCursorPagination
from config.api.schema import WRITE_ERRORS, document
from config.api.views import ApiViewMixin
from publishing.models import ApiScope, Topic
from subscribers import services
from subscribers.forms import MAX_PAUSE_DAYS, NAME_MAX_LENGTH, public_topics, valid_timezone
from subscribers.limits import signup_retry_after
from subscribers.models import EMAIL_MAX_LENGTH, LAST_HOUR, Subscriber, Subscription
from subscribers.queries import frequency_of

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
    locale = serializers.ChoiceField(choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE)
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
        retry_after = signup_retry_after(request._request, str(raw_email)[:320])
        if retry_after is not None:
            # A problem document like every other API error, with Retry-After: the handler's.
            raise exceptions.Throttled(
                wait=retry_after,
                detail="Too many sign-ups from here or for this address.",
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


# --- The integrators' API: subscribers under /api/v1/subscribers/ (API keys with scopes) -------

SUBSCRIBERS_READ = ApiScope.SUBSCRIBERS_READ.value
SUBSCRIBERS_WRITE = ApiScope.SUBSCRIBERS_WRITE.value
CONSENT_NOTE_MAX_LENGTH = 500
TOPIC_SLUG_MAX_LENGTH = 100


class SubscriberSerializer(serializers.ModelSerializer[Subscriber]):
    topics = serializers.SerializerMethodField()
    frequency = serializers.SerializerMethodField(
        help_text="How the subscriptions are sent: immediate, daily or weekly, or paused (then "
        "`paused_until` says until when; null means until changed). The value a PATCH takes."
    )
    paused_until = serializers.SerializerMethodField(
        help_text="The first day mail resumes, while a dated pause is ahead; else null."
    )
    digest_hour = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The local hour (0-23, in `timezone`) chosen for daily and weekly digests; "
        "null: we pick it (the hour the subscriber usually reads, else the site's default). "
        "The value a PATCH takes.",
    )
    digest_time = serializers.SerializerMethodField(
        help_text="When digests actually go: `hour` (local, 0-23) and `reason`: `chosen`, "
        "`learned` (the hour they usually read, from human opens and clicks) or `default`."
    )

    class Meta:
        model = Subscriber
        fields = [
            "id",
            "email",
            "name",
            "status",
            "locale",
            "timezone",
            "digest_hour",
            "digest_time",
            "email_format",
            "tracking_opt_out",
            "source",
            "topics",
            "frequency",
            "paused_until",
            "created_at",
            "updated_at",
            "confirmed_at",
            "unsubscribed_at",
        ]
        read_only_fields = fields

    def get_topics(self, subscriber: Subscriber) -> list[str]:
        # Prefetched by the viewset: no query per row.
        return sorted(s.topic.slug for s in subscriber.subscriptions.all())

    def _frequency(self, subscriber: Subscriber) -> tuple[str, date | None]:
        first = min(subscriber.subscriptions.all(), key=lambda s: s.pk, default=None)
        return frequency_of(first, timezone.localdate())

    @extend_schema_field(serializers.ChoiceField(choices=Subscription.Frequency.values))
    def get_frequency(self, subscriber: Subscriber) -> str:
        return self._frequency(subscriber)[0]

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_paused_until(self, subscriber: Subscriber) -> date | None:
        return self._frequency(subscriber)[1]

    @extend_schema_field(
        inline_serializer(
            "DigestTime",
            {
                "hour": serializers.IntegerField(min_value=0, max_value=LAST_HOUR),
                "reason": serializers.ChoiceField(choices=["chosen", "learned", "default"]),
            },
        )
    )
    def get_digest_time(self, subscriber: Subscriber) -> dict[str, Any]:
        chosen = subscriber.digest_time()
        return {"hour": chosen.hour, "reason": chosen.reason}


def _topics_by_slug(slugs: list[str], *, kept: frozenset[int] = frozenset()) -> list[Topic]:
    """The topics named, in order. An archived topic takes no new subscribers: it is refused
    unless its id is in ``kept`` (the subscriber's own subscriptions)."""
    wanted = list(dict.fromkeys(slugs))
    found = {topic.slug: topic for topic in Topic.objects.filter(slug__in=wanted)}
    unknown = [slug for slug in wanted if slug not in found]
    if unknown:
        raise serializers.ValidationError(f"No topic with the slug {unknown[0]!r}.")
    archived = [s for s in wanted if found[s].archived_at is not None and found[s].pk not in kept]
    if archived:
        raise serializers.ValidationError(
            f"The topic {archived[0]!r} is archived: it takes no new subscribers."
        )
    return [found[slug] for slug in wanted]


class SubscriberCreateSerializer(serializers.Serializer[dict[str, Any]]):
    email = serializers.EmailField(max_length=EMAIL_MAX_LENGTH)
    name = serializers.CharField(
        max_length=NAME_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=TOPIC_SLUG_MAX_LENGTH),
        min_length=1,
        max_length=MAX_TOPICS,
    )
    locale = serializers.ChoiceField(choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE)
    timezone = serializers.CharField(max_length=64, default="UTC")
    form_version = serializers.CharField(max_length=FORM_VERSION_MAX_LENGTH, default="api")
    consent_note = serializers.CharField(
        max_length=CONSENT_NOTE_MAX_LENGTH,
        required=False,
        allow_blank=True,
        default="",
        help_text="Where and when this person consented. With it the subscriber is imported "
        "as active (no confirmation email); without it a double opt-in starts.",
    )

    def validate_timezone(self, value: str) -> str:
        if not valid_timezone(value):
            raise serializers.ValidationError("Not an IANA time zone name (e.g. Europe/Paris).")
        return value

    def validate_topics(self, value: list[str]) -> list[Topic]:
        return _topics_by_slug(value)


class PreferencesSerializer(serializers.Serializer[dict[str, Any]]):
    topics = serializers.ListField(
        child=serializers.SlugField(max_length=TOPIC_SLUG_MAX_LENGTH),
        min_length=1,
        max_length=MAX_TOPICS,
        required=False,
    )
    frequency = serializers.ChoiceField(choices=Subscription.Frequency.values, required=False)
    paused_until = serializers.DateField(required=False, allow_null=True)
    email_format = serializers.ChoiceField(choices=Subscriber.EmailFormat.values, required=False)
    name = serializers.CharField(max_length=NAME_MAX_LENGTH, required=False, allow_blank=True)
    locale = serializers.ChoiceField(choices=settings.LANGUAGES, required=False)
    timezone = serializers.CharField(max_length=64, required=False)
    tracking_opt_out = serializers.BooleanField(
        required=False,
        help_text="True: this subscriber's mail carries no open pixel and no click redirects.",
    )
    digest_hour = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=LAST_HOUR,
        help_text="Local hour (0-23) for daily and weekly digests; null: let us pick.",
        error_messages={
            "min_value": "Choose an hour from 0 to 23 (or null to let us pick).",
            "max_value": "Choose an hour from 0 to 23 (or null to let us pick).",
        },
    )

    def validate_paused_until(self, value: date | None) -> date | None:
        """The preference center's bounds: after today, at most MAX_PAUSE_DAYS ahead."""
        if value is None:
            return None
        today = timezone.localdate()
        if value <= today:
            raise serializers.ValidationError(f"Choose a date after today ({today.isoformat()}).")
        if value > today + timedelta(days=MAX_PAUSE_DAYS):
            raise serializers.ValidationError(
                f"A pause can last at most {MAX_PAUSE_DAYS} days (until "
                f"{(today + timedelta(days=MAX_PAUSE_DAYS)).isoformat()})."
            )
        return value

    def validate_timezone(self, value: str) -> str:
        if not valid_timezone(value):
            raise serializers.ValidationError("Not an IANA time zone name (e.g. Europe/Paris).")
        return value

    def validate_topics(self, value: list[str]) -> list[Topic]:
        subscriber: Subscriber | None = self.context.get("subscriber")
        kept = frozenset(
            subscriber.subscriptions.values_list("topic_id", flat=True) if subscriber else ()
        )
        return _topics_by_slug(value, kept=kept)


class SubscriberFilter(django_filters.FilterSet):  # type: ignore[misc]
    status = django_filters.ChoiceFilter(choices=Subscriber.Status.choices)
    topic = django_filters.CharFilter(
        field_name="subscriptions__topic__slug", max_length=TOPIC_SLUG_MAX_LENGTH
    )
    email = django_filters.CharFilter(method="filter_email", max_length=EMAIL_MAX_LENGTH)

    class Meta:
        model = Subscriber
        fields = ["status", "topic", "email"]

    def filter_email(
        self, queryset: QuerySet[Subscriber], name: str, value: str
    ) -> QuerySet[Subscriber]:
        return queryset.filter(email__iexact=value.strip())


SUBSCRIBER_EXAMPLE = OpenApiExample(
    "An import with consent",
    value={
        "email": "jane@example.com",
        "name": "Jane",
        "topics": ["news"],
        "consent_note": "Paper form at the 2026 fair, kept in folder 12",
    },
    request_only=True,
)


class SubscriberViewSet(
    ApiViewMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Subscriber],
):
    """Subscribers. Keys without subscribers:read learn nothing of who exists: 404."""

    serializer_class = SubscriberSerializer
    pagination_class = StableCursorPagination
    filterset_class = SubscriberFilter
    required_scopes = {
        "list": SUBSCRIBERS_READ,
        "retrieve": SUBSCRIBERS_READ,
        "create": SUBSCRIBERS_WRITE,
        "partial_update": SUBSCRIBERS_WRITE,
        "unsubscribe": SUBSCRIBERS_WRITE,
        "destroy": SUBSCRIBERS_WRITE,
    }
    hidden_actions = ("retrieve", "partial_update", "unsubscribe", "destroy")
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Subscriber]:
        return Subscriber.objects.prefetch_related(
            Prefetch(
                "subscriptions",
                queryset=Subscription.objects.select_related("topic").only(
                    "pk", "subscriber_id", "frequency", "paused_until", "topic__slug"
                ),
            )
        ).order_by("-id")

    def _origin(self, form_version: str = "api") -> services.Origin:
        return services.Origin.from_request(
            self.request._request, via="api", form_version=form_version
        )

    def _detail(self, subscriber_id: int, code: int = status.HTTP_200_OK) -> Response:
        return Response(self.get_serializer(self.get_queryset().get(pk=subscriber_id)).data, code)

    @document(
        summary="List subscribers",
        description="Newest first, by cursor; filter by `status`, `topic` (a slug) and `email`. "
        "Needs subscribers:read.",
        responses={200: SubscriberSerializer(many=True)},
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @document(
        summary="Read a subscriber",
        description="One subscriber. Needs subscribers:read (404 without it).",
        responses={200: SubscriberSerializer},
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().retrieve(request, *args, **kwargs)

    @document(
        summary="Add a subscriber",
        description="Without `consent_note` this starts a double opt-in: the person gets a "
        "confirmation email and stays pending until they use it. With `consent_note` (consent "
        "you collected yourself) the subscriber is imported as active, and the note is kept in "
        "the consent log; suppressed or unsubscribed addresses are refused (409). "
        "Needs subscribers:write. Accepts Idempotency-Key.",
        request=SubscriberCreateSerializer,
        responses={201: SubscriberSerializer},
        errors=WRITE_ERRORS,
        examples=[SUBSCRIBER_EXAMPLE],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = SubscriberCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        note = data["consent_note"].strip()
        if not note:
            outcome = services.sign_up(
                email=data["email"],
                name=data["name"],
                topics=data["topics"],
                locale=data["locale"],
                time_zone=data["timezone"],
                origin=self._origin(data["form_version"]),
            )
            return self._detail(outcome.subscriber_id, status.HTTP_201_CREATED)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["email", "name", "locale", "timezone"])
        writer.writerow([data["email"], data["name"], data["locale"], data["timezone"]])
        report = services.import_subscribers(
            io.BytesIO(buffer.getvalue().encode()),
            services.ImportOptions(
                topics=[topic.slug for topic in data["topics"]],
                confirmed=True,
                consent_note=note,
                source="api",
                workers=1,
            ),
        )
        if report.skipped:
            explanation = report.problems[0][1] if report.problems else "The row was skipped."
            raise ProblemError(explanation, code="not_imported", status_code=409)
        subscriber = Subscriber.objects.by_email(data["email"]).get()
        return self._detail(subscriber.pk, status.HTTP_201_CREATED)

    @document(
        summary="Change a subscriber's preferences",
        description="Topics, frequency (with `paused_until` for a pause), format, name, locale, "
        "time zone and digest hour; fields not sent keep their value. Logged in the consent log. "
        "Needs subscribers:write.",
        request=PreferencesSerializer,
        responses={200: SubscriberSerializer},
        errors=WRITE_ERRORS,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        subscriber = self.get_object()
        serializer = PreferencesSerializer(data=request.data, context={"subscriber": subscriber})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        frequency, paused_until = services.current_frequency(subscriber, timezone.localdate())
        topics = data.get("topics")
        if topics is None:
            topics = [s.topic for s in subscriber.subscriptions.select_related("topic")]
        if not topics:
            raise serializers.ValidationError({"topics": ["Choose at least one topic."]})
        services.update_preferences(
            subscriber,
            topics=topics,
            frequency=data.get("frequency", frequency),
            paused_until=data.get("paused_until", paused_until),
            email_format=data.get("email_format", subscriber.email_format),
            origin=self._origin(),
            name=data.get("name"),
            locale=data.get("locale"),
            time_zone=data.get("timezone"),
            tracking_opt_out=data.get("tracking_opt_out"),
            digest_hour=data.get("digest_hour", services.Keep.KEEP),
        )
        return self._detail(subscriber.pk)

    @document(
        summary="Unsubscribe",
        description="Stops all mail and suppresses the address; unsubscribing twice changes "
        "nothing. Needs subscribers:write.",
        request=None,
        responses={200: SubscriberSerializer},
        errors=WRITE_ERRORS,
    )
    @action(detail=True, methods=["post"])
    def unsubscribe(self, request: Request, pk: str | None = None) -> Response:
        subscriber = self.get_object()
        services.unsubscribe(subscriber, self._origin())
        return self._detail(subscriber.pk)

    @document(
        summary="Erase a subscriber",
        description="Deletes everything stored about the person; only a hash of the address "
        "stays on the suppression list. Needs subscribers:write.",
        responses={204: None},
        errors=WRITE_ERRORS,
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.erase_subscriber(self.get_object(), self._origin())
        return Response(status=status.HTTP_204_NO_CONTENT)
