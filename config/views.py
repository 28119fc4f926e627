"""Health probes and the home page. Part of the site's composition (like config.urls): it may
import apps, and no app imports it; the rate-limit page is in config.ratelimit."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from publishing.models import Publication, Topic
from publishing.views import PAGE_SIZE

logger = logging.getLogger(__name__)


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    """`/`: the archive's latest publications beside the sign-up form.

    The form (``{% subscribe_box %}``, subscribers' template tag) posts to the sign-up page
    (subscribers:signup), which answers errors on its own page and success with the "check
    your email" page. Not cached by shared caches: the form carries a CSRF token (Django adds
    Vary: Cookie).
    """
    page = Paginator(Publication.objects.in_archive(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "topics": Topic.objects.offered()}
    return render(request, "home.html", context)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else, so it never flaps with the database."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: database reachable, migrations applied, a worker seen recently.

    Answers 200 when all three hold and 503 otherwise, with each check's result in the body.
    """
    checks: dict[str, dict[str, object]] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = {"ok": True}
    except DatabaseError as exc:
        logger.warning("readyz: database unreachable: %s", exc)
        checks["database"] = {"ok": False, "error": "database unreachable"}

    if checks["database"]["ok"]:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
        checks["migrations"] = {"ok": not pending, "pending": len(pending)}

        from channels.models import WorkerHeartbeat

        cutoff = timezone.now() - timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE)
        try:
            last = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True)[
                :1
            ]
            last_seen = last[0] if last else None
        except DatabaseError:
            last_seen = None
        checks["worker"] = {
            "ok": last_seen is not None and last_seen >= cutoff,
            "last_seen": last_seen.isoformat() if last_seen else None,
        }
    else:
        checks["migrations"] = {"ok": False, "error": "database unreachable"}
        checks["worker"] = {"ok": False, "error": "database unreachable"}

    ready = all(check["ok"] for check in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
