"""Topics, publications (every change kept by django-simple-history) and dispatches."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.validators import MaxLengthValidator, MinLengthValidator
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.urls import reverse
from simple_history.models import HistoricalRecords

TITLE_MAX_LENGTH = 200
SUMMARY_MAX_LENGTH = 500
BODY_MAX_LENGTH = 100_000
MIN_TOPICS = 1
MAX_TOPICS = 50
#: A/B subjects (decision 0079): none, or two to four distinct subjects of 1 to 200 characters.
AB_MIN_SUBJECTS = 2
AB_MAX_SUBJECTS = 4
AB_SUBJECT_MAX_LENGTH = 200
#: The share of the email audience that gets the test, in percent.
AB_SHARE_MIN = 5
AB_SHARE_MAX = 50
#: Hours between the test and the decision.
AB_WAIT_MIN_HOURS = 1
AB_WAIT_MAX_HOURS = 72
#: Delivered test messages each subject needs before a winner may be declared.
AB_MIN_SAMPLE_MIN = 10
AB_MIN_SAMPLE_MAX = 100_000


class TopicQuerySet(models.QuerySet["Topic"]):
    def public(self) -> TopicQuerySet:
        """Topics shown in the archive: their pages and feeds (archived ones included, so that
        links and feed readers keep working)."""
        return self.filter(is_public=True)

    def offered(self) -> TopicQuerySet:
        """Topics anyone may newly subscribe to and the archive lists: public, not archived."""
        return self.public().filter(archived_at__isnull=True)


class Topic(models.Model):
    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, validators=[MaxLengthValidator(2000)])
    is_public = models.BooleanField(
        default=True, help_text="Public topics are offered on the sign-up page and in feeds."
    )
    # Archived: no longer offered to new subscribers nor listed; existing subscriptions, the
    # topic's page and feed stay.
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Set: no longer offered on the sign-up page nor listed in the archive; "
        "existing subscriptions, the topic's page and feed stay.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    objects = TopicQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("publishing:topic_detail", args=[self.slug])


class PublicationQuerySet(models.QuerySet["Publication"]):
    def published(self) -> PublicationQuerySet:
        return self.filter(status=Publication.Status.PUBLISHED)

    def due(self, now: datetime) -> PublicationQuerySet:
        """Scheduled publications whose time has come."""
        return self.filter(status=Publication.Status.SCHEDULED, publish_at__lte=now)

    def in_archive(self) -> PublicationQuerySet:
        """Published publications with at least one public topic: the topic pages and feeds."""
        in_public_topic = Publication.topics.through.objects.filter(
            publication_id=OuterRef("pk"), topic__is_public=True
        )
        return self.published().filter(Exists(in_public_topic)).order_by("-published_at", "-pk")


# Kept by name so that services can record one version per logical change (see
# publishing.history.record_version) instead of one per save and per m2m signal.
PUBLICATION_HISTORY = HistoricalRecords(m2m_fields=["topics"])


class Publication(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    title = models.CharField(max_length=TITLE_MAX_LENGTH, validators=[MinLengthValidator(1)])
    slug = models.SlugField(max_length=TITLE_MAX_LENGTH, unique=True)
    summary = models.CharField(max_length=SUMMARY_MAX_LENGTH, blank=True)
    body = models.TextField(help_text="Markdown.", validators=[MaxLengthValidator(BODY_MAX_LENGTH)])
    topics = models.ManyToManyField(Topic, related_name="publications")
    language = models.CharField(max_length=10, choices=settings.LANGUAGES, default="en")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    publish_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # A/B subjects (decision 0079): empty, or two to four subjects, the first the default. Kept
    # in the version like every editable field, so a dispatch tests the subjects it was sent with.
    subjects = models.JSONField(
        "A/B subjects",
        default=list,
        blank=True,
        help_text="Two to four email subjects to test; empty: the title is the subject.",
    )
    ab_share = models.PositiveSmallIntegerField(
        "test share (%)",
        default=20,
        help_text=f"Percent of the email audience that gets the test ({AB_SHARE_MIN}-"
        f"{AB_SHARE_MAX}); the rest gets the winner.",
    )
    ab_wait_hours = models.PositiveSmallIntegerField(
        "decide after (hours)",
        default=4,
        help_text=f"Hours between the test and the decision ({AB_WAIT_MIN_HOURS}-"
        f"{AB_WAIT_MAX_HOURS}).",
    )

    class AbMetric(models.TextChoices):
        CLICKS = "clicks", "Click rate (people)"
        OPENS = "opens", "Open rate (people)"

    ab_metric = models.CharField(
        "winner by", max_length=10, choices=AbMetric.choices, default=AbMetric.CLICKS
    )
    ab_min_sample = models.PositiveIntegerField(
        "minimum sample per subject",
        default=100,
        help_text="Delivered test messages each subject needs before one may win.",
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="publications",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = PUBLICATION_HISTORY

    objects = PublicationQuerySet.as_manager()

    class Meta:
        ordering = ["-published_at", "-created_at"]
        indexes = [
            models.Index(fields=["status", "publish_at"], name="publication_status_at"),
            models.Index(fields=["-published_at"], name="publication_published_at"),
        ]
        permissions = [
            ("publish_publication", "Can publish, schedule and resend publications"),
            ("archive_publication", "Can archive publications"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("publishing:publication_detail", args=[self.slug])


class PublicationTranslation(models.Model):
    """The publication in another language: a version of the same publication, not a copy
    (decision 0082). Topics, slug, status and dates are the publication's; one translation per
    language, never in the publication's own language (checked by publishing.translations).
    Every change is kept (simple-history); a dispatch pins the versions it sends."""

    publication = models.ForeignKey(
        Publication, on_delete=models.CASCADE, related_name="translations"
    )
    language = models.CharField(max_length=10, choices=settings.LANGUAGES)
    title = models.CharField(max_length=TITLE_MAX_LENGTH, validators=[MinLengthValidator(1)])
    summary = models.CharField(max_length=SUMMARY_MAX_LENGTH, blank=True)
    body = models.TextField(help_text="Markdown.", validators=[MaxLengthValidator(BODY_MAX_LENGTH)])
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["publication", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["publication", "language"], name="one_translation_per_language"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_language_display()}: {self.title}"

    def get_absolute_url(self) -> str:
        return reverse(
            "publishing:publication_translation", args=[self.publication.slug, self.language]
        )


class Dispatch(models.Model):
    """One send of one version of a publication: the parent of its deliveries."""

    class Kind(models.TextChoices):
        PUBLISH = "publish", "First publication"
        RESEND = "resend", "Deliberate resend"

    class Status(models.TextChoices):
        PLANNING = "planning", "Planning"
        SENDING = "sending", "Sending"
        #: A guardrail stopped its email (decision 0085): a Publisher resumes or cancels it.
        PAUSED = "paused", "Paused"
        DONE = "done", "Done"
        #: A Publisher cancelled it while paused: what was not sent never will be.
        CANCELLED = "cancelled", "Cancelled"

    publication = models.ForeignKey(
        Publication, on_delete=models.PROTECT, related_name="dispatches"
    )
    # The exact version sent: a row of the history table, never rewritten.
    version = models.ForeignKey(
        "publishing.HistoricalPublication",
        on_delete=models.PROTECT,
        related_name="+",
        db_constraint=False,
    )
    #: The version's number within its publication (1 for its first version, 2 for the
    #: next...): the number the admin, the API and webhook payloads show (decision 0076).
    #: Filled from ``version`` on the first save.
    version_number = models.PositiveIntegerField("version", editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PUBLISH)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PLANNING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    planned_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # An A/B subject test (decision 0079): set by the fan-out when the version carries subjects;
    # the rest of the email audience waits until the decision (channels.abtest).
    ab_decide_at = models.DateTimeField("A/B decision due", null=True, blank=True)
    ab_decided_at = models.DateTimeField("A/B decided", null=True, blank=True)
    #: The subject sent to the rest (its index in the version's subjects).
    ab_winner = models.PositiveSmallIntegerField("A/B subject sent to the rest", null=True)
    #: What the decision saw: method, metric, per subject its sample and rate, p-value, reason.
    ab_result = models.JSONField("A/B result", default=dict, blank=True)
    # Guardrails (decision 0085): why and when its email was paused, and what the guardrail
    # measured (the rates, and the counts at each resume, which later checks start from).
    paused_at = models.DateTimeField(null=True, blank=True)
    pause_reason = models.CharField(max_length=500, blank=True)
    guardrail = models.JSONField(default=dict, blank=True)
    #: The translation versions this dispatch sends (decision 0082): language -> the history
    #: row id of that translation as it stood when the dispatch was created; later edits of a
    #: translation reach a later dispatch only, as edits of the publication do.
    translation_versions = models.JSONField(default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "dispatches"
        constraints = [
            # Publishing twice (two editors, two workers) can never create a second first send.
            models.UniqueConstraint(
                fields=["publication"],
                condition=Q(kind="publish"),
                name="one_publish_dispatch_per_publication",
            ),
        ]

    def __str__(self) -> str:
        # The publication is a select_related away in every admin list that shows dispatches.
        return (
            f"{self.get_kind_display()} of “{self.publication.title}”, "
            f"version {self.version_number}"
        )

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.version_number is None:
            self.version_number = count_versions_up_to(self.version)
        super().save(*args, **kwargs)


def count_versions_up_to(version: Any) -> int:
    """The number of ``version`` within its publication: how many of the publication's history
    rows are as old as it or older (1 for the first). publishing.versions.version_number."""
    rows = Publication.history.model.objects
    return int(rows.filter(id=version.id, history_id__lte=version.history_id).count())


class ApiScope(models.TextChoices):
    """What an API key may do; each endpoint names the scope its action needs."""

    PUBLICATIONS_READ = "publications:read", "Read topics and publications"
    PUBLICATIONS_WRITE = (
        "publications:write",
        "Create, edit and delete drafts, restore versions; create, rename and archive topics",
    )
    PUBLICATIONS_PUBLISH = "publications:publish", "Publish, schedule and unschedule publications"
    SUBSCRIBERS_READ = "subscribers:read", "Read subscribers"
    SUBSCRIBERS_WRITE = "subscribers:write", "Add, change, unsubscribe and erase subscribers"
    CHANNELS_ADMIN = "channels:admin", "Configure every channel"
    DELIVERIES_READ = "deliveries:read", "Read dispatches and deliveries"
    DELIVERIES_WRITE = "deliveries:write", "Retry failed deliveries"
    WEBHOOKS_ADMIN = "webhooks:admin", "Configure webhook channels"


API_KEY_PREFIX_LENGTH = 11  # "pk_" and 8 characters


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def usable(self, now: datetime) -> ApiKeyQuerySet:
        """Keys neither revoked nor expired at ``now``."""
        return self.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )


class ApiKey(models.Model):
    """A credential for the REST API: ``pk_XXXXXXXX_<secret>``, stored as the visible prefix and
    the SHA-256 of the whole key (decision 0050). The key itself is shown once, at creation."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_keys",
        help_text="The API acts as this user (within the key's scopes); empty: as the system.",
    )
    scopes = models.JSONField(default=list, help_text="Scopes this key holds.")
    prefix = models.CharField(max_length=API_KEY_PREFIX_LENGTH, unique=True, editable=False)
    hashed_key = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class PublicationVector(models.Model):
    """The words of one version of a publication (title, summary and body), as hashed term
    counts: what relevance ranking compares (publishing.ranking, decision 0080). Written once
    per version, the first time the version is ranked, never per reader; the feature space is
    fixed (hashed), so a stored row never goes stale when other publications arrive."""

    version = models.OneToOneField(
        "publishing.HistoricalPublication",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_constraint=False,
    )
    publication = models.ForeignKey(Publication, on_delete=models.CASCADE, related_name="+")
    #: The hashed term indices (int32, ascending) and their counts (float32), as raw bytes.
    terms = models.BinaryField()
    counts = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Term vector of version {self.version_id}"
