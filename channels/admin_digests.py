"""The Digest admin: which digest went to whom, for which period, listing what. Read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from channels.models import Digest

if TYPE_CHECKING:
    DigestAdminBase = admin.ModelAdmin[Digest]
else:  # ModelAdmin is not subscriptable at run time
    DigestAdminBase = admin.ModelAdmin


@admin.register(Digest)
class DigestAdmin(DigestAdminBase):
    list_display = [
        "id",
        "frequency",
        "subscriber",
        "period_start",
        "period_end",
        "delivery_status",
        "created_at",
    ]
    list_filter = ["frequency", "delivery__status"]
    list_select_related = ["subscriber", "delivery"]
    search_fields = ["=id", "=subscriber__id", "subscriber__email", "=delivery__id"]
    date_hierarchy = "period_end"
    readonly_fields = [
        "subscriber",
        "frequency",
        "period_start",
        "period_end",
        "delivery",
        "publications",
        "created_at",
    ]

    @admin.display(description="Delivery status", ordering="delivery__status")
    def delivery_status(self, obj: Digest) -> str:
        return obj.delivery.status if obj.delivery is not None else "-"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Digest]:
        return super().get_queryset(request).prefetch_related("publications")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Digest | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Digest | None = None) -> bool:
        return False
