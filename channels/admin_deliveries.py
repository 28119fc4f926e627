"""The Delivery admin: the ledger, read-only, with a re-queue action for failed, dead and
uncertain rows, and the SES feedback (bounces, complaints) each delivery received.

A delivery is never edited by hand: the page is "View delivery", with no Save button. Who
received it is shown as an address (the subscriber's name and email, the channel, or the site
mail's recipient) to those with the publish permission (Publishers, Administrators), and as a
subscriber id to anyone else who may view the ledger.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from channels import services
from channels.models import Delivery, SesFeedback

if TYPE_CHECKING:
    DeliveryAdminBase = admin.ModelAdmin[Delivery]
    SesFeedbackAdminBase = admin.ModelAdmin[SesFeedback]
    SesFeedbackInlineBase = admin.TabularInline[SesFeedback, Delivery]
else:  # ModelAdmin is not subscriptable at run time
    DeliveryAdminBase = admin.ModelAdmin
    SesFeedbackAdminBase = admin.ModelAdmin
    SesFeedbackInlineBase = admin.TabularInline

SES_FEEDBACK_FIELDS = (
    "type",
    "subtype",
    "suppressed",
    "occurred_at",
    "received_at",
    "sns_message_id",
)


class SesFeedbackInline(SesFeedbackInlineBase):
    """What SES reported about this delivery after sending it (decision 0043)."""

    model = SesFeedback
    fields = SES_FEEDBACK_FIELDS
    readonly_fields = SES_FEEDBACK_FIELDS
    extra = 0
    can_delete = False
    verbose_name_plural = "SES feedback"

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False


@admin.register(SesFeedback)
class SesFeedbackAdmin(SesFeedbackAdminBase):
    """Every bounce and complaint received, read-only: the audit of who was suppressed and why."""

    list_display = ["received_at", "type", "subtype", "suppressed", "delivery_id", "topic_arn"]
    list_filter = ["type", "subtype"]
    search_fields = ["=sns_message_id", "=provider_message_id", "=delivery__id"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "sns_message_id",
        "topic_arn",
        "type",
        "subtype",
        "provider_message_id",
        "delivery",
        "suppressed",
        "detail",
        "occurred_at",
        "received_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SesFeedback | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SesFeedback | None = None) -> bool:
        return False


class UncertainFilter(admin.SimpleListFilter):
    """Deliveries handed over at least once without an answer (decision 0068)."""

    title = "uncertain hand-over"
    parameter_name = "uncertain"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return [
            ("any", "Any (resent or not)"),
            ("resent", "Resent (may have arrived twice)"),
            ("skipped", "Not resent (may not have arrived)"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        uncertain = queryset.filter(uncertain_at__isnull=False)
        if self.value() == "any":
            return uncertain
        if self.value() == "resent":
            return uncertain.exclude(status=Delivery.Status.UNCERTAIN)
        if self.value() == "skipped":
            return uncertain.filter(status=Delivery.Status.UNCERTAIN)
        return queryset


#: Seeing who received a message (personal data) goes with the right to send to everyone; so
#: does re-queueing, which sends messages again (decision 0062).
ADDRESS_PERMISSION = "publishing.publish_publication"


def shows_addresses(request: HttpRequest) -> bool:
    return bool(request.user.has_perm(ADDRESS_PERMISSION))


def recipient_of(delivery: Delivery) -> str:
    """Who the delivery went to, in words: the subscriber's name and address, the broadcast
    channel, or the site mail's recipient. Reads the subscriber and channel already joined."""
    if delivery.kind == Delivery.Kind.BROADCAST:
        return f"{delivery.channel.name} (channel)"
    if delivery.kind == Delivery.Kind.TRANSACTIONAL:
        return delivery.recipient
    subscriber = delivery.subscriber
    if subscriber is None:
        return "(subscriber erased)"
    return f"{subscriber.name} <{subscriber.email}>" if subscriber.name else subscriber.email


LIST_COLUMNS = [
    "id",
    "kind",
    "status",
    "channel",
    "dispatch",
    "recipient_column",
    "attempts",
    "next_attempt_at",
    "sent_at",
    "uncertain_at",
    "last_error",
]
#: Without the publish permission: the subscriber's id instead of the recipient's address.
ID_COLUMNS = [column.replace("recipient_column", "subscriber_id") for column in LIST_COLUMNS]
DETAIL_FIELDS = [
    "kind",
    "dispatch",
    "channel",
    "recipient_column",
    "priority",
    "status",
    "attempts",
    "next_attempt_at",
    "lease_expires_at",
    "last_error",
    "provider_message_id",
    "created_at",
    "updated_at",
    "sent_at",
    "uncertain_at",
]


@admin.register(Delivery)
class DeliveryAdmin(DeliveryAdminBase):
    list_display = tuple(ID_COLUMNS)
    list_filter = ["status", UncertainFilter, "kind", "channel"]
    list_select_related = ["channel", "dispatch__publication", "subscriber"]
    search_fields = ["=id", "=dispatch__id", "=subscriber__id", "provider_message_id"]
    date_hierarchy = "created_at"
    actions = ["requeue"]
    exclude = ["raw_message"]
    inlines = [SesFeedbackInline]
    readonly_fields = [*DETAIL_FIELDS, "subscriber_id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Delivery]:
        # The detail page reads the same joins as the list: no query per related row.
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_list_display(self, request: HttpRequest) -> list[str]:  # type: ignore[override]
        return list(LIST_COLUMNS if shows_addresses(request) else ID_COLUMNS)

    def get_fields(  # type: ignore[override]
        self, request: HttpRequest, obj: Delivery | None = None
    ) -> list[str]:
        if shows_addresses(request):
            return list(DETAIL_FIELDS)
        return [field.replace("recipient_column", "subscriber_id") for field in DETAIL_FIELDS]

    @admin.display(description="Recipient")
    def recipient_column(self, delivery: Delivery) -> str:
        return recipient_of(delivery)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_requeue_permission(self, request: HttpRequest) -> bool:
        return shows_addresses(request)

    @admin.action(
        description="Re-queue the selected failed, dead or uncertain deliveries",
        permissions=["requeue"],
    )
    def requeue(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        count = services.requeue_deliveries(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} deliveries re-queued.", messages.SUCCESS)
