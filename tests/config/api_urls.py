"""A small API used to test the shared plumbing (config/api/) through real DRF requests."""

from __future__ import annotations

import threading
from typing import Any

from django.urls import URLPattern, URLResolver, include, path
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import api_view, permission_classes, throttle_classes
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import SimpleRouter

from config.api.conditional import ConditionalMixin
from config.api.idempotency import IdempotentMixin
from config.api.throttles import IPRateThrottle
from config.urls import handler404, handler500
from config.urls import urlpatterns as site_urlpatterns
from publishing.models import Topic

__all__ = ["handler404", "handler500"]

slow_request_started = threading.Event()
slow_request_release = threading.Event()


class TopicSerializer(serializers.ModelSerializer[Topic]):
    class Meta:
        model = Topic
        fields = ["id", "name", "slug", "description", "updated_at"]
        read_only_fields = ["id", "updated_at"]


class TopicViewSet(ConditionalMixin, IdempotentMixin, viewsets.ModelViewSet[Topic]):
    queryset = Topic.objects.order_by("id")
    serializer_class = TopicSerializer
    permission_classes = [permissions.AllowAny]


class TinyThrottle(IPRateThrottle):
    rate = "3/min"


@api_view(["GET"])
@permission_classes([permissions.AllowAny])
@throttle_classes([TinyThrottle])
def throttled(request: Request) -> Response:
    return Response({"ok": True})


@api_view(["GET"])
@permission_classes([permissions.AllowAny])
def boom(request: Request) -> Response:
    raise RuntimeError("secret failure for jane@example.com")


class SlowView(IdempotentMixin, viewsets.ViewSet):
    permission_classes = [permissions.AllowAny]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        slow_request_started.set()
        slow_request_release.wait(timeout=10)
        return Response({"done": True}, status=201)


class HalfDoneView(IdempotentMixin, viewsets.ViewSet):
    """Writes, then refuses: a 4xx given after a change began."""

    permission_classes = [permissions.AllowAny]

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        number = Topic.objects.count()
        Topic.objects.create(name=f"Half {number}", slug=f"half-{number}")
        return Response({"detail": "Refused after a change."}, status=409)


router = SimpleRouter()
router.register("topics", TopicViewSet)
router.register("slow", SlowView, basename="slow")
router.register("half-done", HalfDoneView, basename="half-done")

urlpatterns: list[URLPattern | URLResolver] = [
    path("api/test/", include(router.urls)),
    path("api/test/throttled/", throttled),
    path("api/test/boom/", boom),
    *site_urlpatterns,
]
