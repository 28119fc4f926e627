"""The site's URLs plus /bench/bare/publications/: the same JSON as the API's list and detail,
built from one query each with no framework in between (the framework's limit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.postgres.aggregates import ArrayAgg
from django.db.models import Count, Window
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, URLResolver, path

from config.urls import handler404, handler500
from config.urls import urlpatterns as site_urlpatterns
from publishing.models import Publication

__all__ = ["handler404", "handler500"]

LIST_FIELDS = [
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
# The detail's A/B test settings (decision 0079), after the body.
AB_FIELDS = ["subjects", "ab_share", "ab_wait_hours", "ab_metric", "ab_min_sample"]


def _stamp(value: datetime | None) -> str | None:
    # DRF's format: ISO 8601 with microseconds and Z for UTC.
    return value.isoformat().replace("+00:00", "Z") if value else None


def _row(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    out = {name: row[name] for name in fields}
    out["topics"] = [slug for slug in row["topics"] if slug]
    for name in ("publish_at", "published_at", "created_at", "updated_at"):
        out[name] = _stamp(row[name])
    return out


def bare_list(request: HttpRequest) -> HttpResponse:
    size = min(int(request.GET.get("page_size", "50")), 200)
    rows = list(
        Publication.objects.order_by("-created_at", "-pk")
        .annotate(topic_slugs=ArrayAgg("topics__slug", order_by="topics__name"))
        .annotate(total=Window(Count("pk")))
        .values(*[name for name in LIST_FIELDS if name != "topics"], "topic_slugs", "total")[:size]
    )
    results = [_row({**row, "topics": row["topic_slugs"]}, LIST_FIELDS) for row in rows]
    count = rows[0]["total"] if rows else 0
    return JsonResponse({"count": count, "next": None, "previous": None, "results": results})


def bare_detail(request: HttpRequest, pk: int) -> HttpResponse:
    row = (
        Publication.objects.filter(pk=pk)
        .annotate(topic_slugs=ArrayAgg("topics__slug", order_by="topics__name"))
        .values(
            *[name for name in LIST_FIELDS if name != "topics"], "body", *AB_FIELDS, "topic_slugs"
        )
        .first()
    )
    if row is None:
        return JsonResponse({"detail": "Not found."}, status=404)
    fields = [*LIST_FIELDS, "body", *AB_FIELDS]
    return JsonResponse(_row({**row, "topics": row["topic_slugs"]}, fields))


urlpatterns: list[URLPattern | URLResolver] = [
    path("bench/bare/publications/", bare_list),
    path("bench/bare/publications/<int:pk>/", bare_detail),
    *site_urlpatterns,
]
