"""Publishing from the admin, with the audience counted first.

"Publish" opens a confirmation page: per channel, how many recipients the publication will
reach, counted with ``audience_by_channel``, the very querysets the fan-out inserts from (so the
number shown is the number of deliveries the dispatch creates, decision 0076), the subject, a
final test to oneself, then "Publish to N recipients". The same page confirms a deliberate
resend. publishing/admin.py knows nothing of channels (the dependency points from channels to
publishing), so, as for the Dispatch admin, this module replaces the Publication registration
with a subclass that adds the page and the latest dispatch's progress on the publication page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from channels.admin_dispatches import progress_context
from channels.backends.base import BackendError, get_backend_class
from channels.engine.fanout import audience_by_channel
from channels.models import Delivery
from publishing import rendering, services
from publishing.abtests import subject_for, subjects_of, test_size
from publishing.admin import PublicationAdmin
from publishing.exceptions import PublishingError, PublishingPermissionError
from publishing.models import Dispatch, Publication

CONFIRM_TEMPLATE = "publishing/admin/publish_confirm.html"


@dataclass(frozen=True)
class ChannelCount:
    name: str
    kind: str
    per: str  # what one recipient is: "subscriber" or "message to the channel"
    count: int


@dataclass(frozen=True)
class AbPlan:
    """An A/B subject test the publish would start (decision 0079): who tests, who waits."""

    subjects: list[str]
    share: int
    test: int
    rest: int
    wait_hours: int
    metric: str
    min_sample: int

    @property
    def per_subject(self) -> int:
        """The fewest test messages one subject gets (the split is even within one)."""
        return self.test // len(self.subjects)

    @property
    def below_minimum(self) -> bool:
        return self.per_subject < self.min_sample


@dataclass
class PublishPlan:
    """What confirming would do for one publication: its subject and who receives it."""

    publication: Publication
    subject: str
    resend: bool
    channels: list[ChannelCount] = field(default_factory=list)
    existing: Dispatch | None = None  # already published: confirming does nothing new
    problems: list[str] = field(default_factory=list)
    no_email: bool = False
    ab_test: AbPlan | None = None

    @property
    def total(self) -> int:
        return sum(channel.count for channel in self.channels)

    @property
    def can_send(self) -> bool:
        return self.existing is None and not self.problems


def _kind_label(kind: str) -> str:
    try:
        return str(get_backend_class(kind).label)
    except BackendError:
        return kind


def plan_for(publication: Publication) -> PublishPlan:
    """Count, per channel, the recipients a publish (or, once published, a resend) reaches now.

    The topics are the publication's current ones: the version recorded when publishing holds
    exactly these, and the fan-out reads the topics of that version.
    """
    published = publication.status == Publication.Status.PUBLISHED
    version = publication.history.order_by("-history_id").first() or publication
    plan = PublishPlan(
        publication=publication,
        subject=rendering.render_email(version).subject,
        resend=published,
    )
    if publication.status == Publication.Status.ARCHIVED:
        plan.problems.append("An archived publication cannot be published.")
    topic_ids = sorted(publication.topics.values_list("pk", flat=True))
    if not topic_ids:
        plan.problems.append("Choose at least one topic before publishing.")
    for audience in audience_by_channel(topic_ids, timezone.now()):
        per = "subscriber" if audience.kind == Delivery.Kind.SUBSCRIBER else "message"
        plan.channels.append(
            ChannelCount(
                name=audience.channel.name,
                kind=_kind_label(audience.channel.kind),
                per=per,
                count=audience.count(),
            )
        )
    # A site may send to broadcast channels only; the page says subscribers get no email.
    plan.no_email = not any(channel.per == "subscriber" for channel in plan.channels)
    subjects = subjects_of(version)
    email = [channel.count for channel in plan.channels if channel.per == "subscriber"]
    if subjects and email and not published:
        test = test_size(email[0], version.ab_share)
        plan.ab_test = AbPlan(
            subjects=subjects,
            share=version.ab_share,
            test=test,
            rest=email[0] - test,
            wait_hours=version.ab_wait_hours,
            metric=str(dict(Publication.AbMetric.choices).get(version.ab_metric, "")),
            min_sample=version.ab_min_sample,
        )
        plan.subject = " / ".join(subjects)
    elif subjects:  # a resend: the subject that won the first send, if the subjects are the same
        first = publication.dispatches.filter(kind=Dispatch.Kind.PUBLISH).first()
        tested = subjects_of(first.version) if first is not None else []
        winner = first.ab_winner if first is not None and tested == subjects else None
        plan.subject = str(subject_for(version, winner))
    return plan


def _confirmed_total(request: HttpRequest) -> int | None:
    try:
        return int(request.POST.get("expected_total", ""))
    except ValueError:
        return None


class PublicationPublishAdmin(PublicationAdmin):
    """The Publication admin with the publish confirmation and the latest dispatch's progress."""

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<int:object_id>/publish/",
                self.admin_site.admin_view(self.publish_view),
                name="publishing_publication_publish",
            ),
        ]
        return [*own, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        try:
            latest = (
                Dispatch.objects.filter(publication_id=int(object_id))
                .order_by("-created_at", "-pk")
                .first()
            )
        except ValueError:
            latest = None
        if latest is not None and request.user.has_perm("publishing.view_dispatch"):
            context.update(
                progress_context(latest),
                progress_heading_link=reverse("admin:publishing_dispatch_change", args=[latest.pk]),
                dispatch_count=Dispatch.objects.filter(
                    publication_id=latest.publication_id
                ).count(),
                dispatches_url=reverse("admin:publishing_dispatch_changelist")
                + f"?publication__id__exact={latest.publication_id}",
            )
        return super().change_view(request, object_id, form_url, context)

    # --- The confirmation page ----------------------------------------------------------------

    def _render_confirm(
        self, request: HttpRequest, plans: list[PublishPlan], *, action: bool
    ) -> TemplateResponse:
        total = sum(plan.total for plan in plans if plan.can_send)
        resend = len(plans) == 1 and plans[0].resend
        one = plans[0].publication if len(plans) == 1 else None
        verb = "Send again" if resend else "Publish"
        context = {
            **self.admin_site.each_context(request),
            "title": f"{verb} “{one}”?" if one else f"Publish {len(plans)} publications?",
            "opts": self.model._meta,
            "original": one,
            "plans": plans,
            "total": total,
            "resend": resend,
            "can_send": any(plan.can_send for plan in plans),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME if action else None,
            "cancel_url": self._change_url(one)
            if one
            else reverse("admin:publishing_publication_changelist"),
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)

    def publish_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: the confirmation. POST "test": a test to oneself, back here. POST "publish":
        publish (or resend) if the audience is still the number the page showed."""
        publication = self._object(request, object_id)
        if not self.has_publish_permission(request):
            raise PermissionDenied
        here = reverse("admin:publishing_publication_publish", args=[publication.pk])
        if request.method == "POST" and "send_test" in request.POST:
            try:
                address = services.send_test(publication, request.user)
            except PublishingError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.message_user(request, f"Test sent to {address}.", messages.SUCCESS)
            return HttpResponseRedirect(here)
        plan = plan_for(publication)
        if request.method == "POST" and plan.can_send:
            if _confirmed_total(request) != plan.total:
                self.message_user(
                    request,
                    f"The audience changed while this page was open: it is now {plan.total}. "
                    "Check the numbers and confirm again.",
                    messages.WARNING,
                )
                return self._render_confirm(request, [plan], action=False)
            return self._send(request, plan)
        return self._render_confirm(request, [plan], action=False)

    def _send(self, request: HttpRequest, plan: PublishPlan) -> HttpResponse:
        user: Any = request.user
        publication = plan.publication
        try:
            if plan.resend:
                dispatch = services.resend(publication, by=user)
            else:
                dispatch = services.publish(publication, by=user)
        except PublishingPermissionError:
            raise PermissionDenied from None
        except PublishingError as error:
            self.message_user(request, str(error), messages.ERROR)
            return HttpResponseRedirect(self._change_url(publication))
        self.message_user(
            request,
            f"{'Sending again' if plan.resend else 'Published'}: {plan.total} recipient(s). "
            "This page follows the sending.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:publishing_dispatch_change", args=[dispatch.pk]))

    # --- The list action ----------------------------------------------------------------------

    @admin.action(description="Publish…", permissions=["publish"])
    def publish_now(
        self, request: HttpRequest, queryset: QuerySet[Publication]
    ) -> TemplateResponse | None:
        """The selected publications' audiences first; "apply" with the same total publishes."""
        plans = [plan_for(publication) for publication in queryset]
        sendable = [plan for plan in plans if plan.can_send and not plan.resend]
        if "apply" in request.POST:
            total = sum(plan.total for plan in sendable)
            if _confirmed_total(request) == total:
                user: Any = request.user
                self._each(
                    request,
                    queryset.filter(pk__in=[plan.publication.pk for plan in sendable]),
                    lambda p: services.publish(p, by=user),
                    "published",
                )
                return None
            self.message_user(
                request,
                f"The audience changed while the page was open: it is now {total}. "
                "Check the numbers and confirm again.",
                messages.WARNING,
            )
        for plan in plans:
            if plan.resend:
                plan.existing = plan.publication.dispatches.first()
        return self._render_confirm(request, plans, action=True)


admin.site.unregister(Publication)
admin.site.register(Publication, PublicationPublishAdmin)
