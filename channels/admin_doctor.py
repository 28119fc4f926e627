"""The admin's Deliverability page: what ``manage.py doctor`` finds, as a table (decision 0083).

Under the Channel admin (``/admin/channels/channel/doctor/``), for whoever may view channels
(the Administrator role): the findings name domains, providers and account limits. Each visit
runs the checks again; DNS answers are not cached between visits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from channels import doctor
from channels.doctor import Level

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

    from channels.models import Channel

VIEW_PERMISSION = "channels.view_channel"


def doctor_page(model_admin: ModelAdmin[Channel], request: HttpRequest) -> HttpResponse:
    """The findings, worst first within each check's order; 403 without VIEW_PERMISSION."""
    if not request.user.has_perm(VIEW_PERMISSION):
        return HttpResponse(status=403)
    report = doctor.run()
    context: dict[str, Any] = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": "Deliverability",
        "report": report,
        "status": report.worst.value,
        "counts": {level.value: report.count(level) for level in Level},
    }
    return TemplateResponse(request, "admin/channels/doctor.html", context)
