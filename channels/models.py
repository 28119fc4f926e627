"""Channels (configured in the database), deliveries (the ledger) and worker heartbeats."""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.db.models import Q

from publishing.models import Publication


class ChannelQuerySet(models.QuerySet["Channel"]):
    def default_email(self) -> Channel | None:
        """The channel subscribers' email and the site's mail go through (decision 0031): the
        enabled email channel marked default, else the enabled email channel created first."""
        return (
            self.filter(is_enabled=True, kind__startswith="email")
            .order_by("-is_default_email", "pk")
            .first()
        )


class Channel(models.Model):
    """A configured destination: an email provider, a Slack channel, a Discord or HTTP webhook."""

    class CircuitState(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        HALF_OPEN = "half_open", "Half-open"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=50, help_text="The backend type, from the registry.")
    is_enabled = models.BooleanField(default=True)
    # Subscribers' email and the site's own mail go through this channel (decision 0031).
    is_default_email = models.BooleanField(
        default=False,
        help_text="Subscribers receive email through this channel; at most one is the default.",
    )
    # Non-secret settings, validated by the backend's schema on save.
    config = models.JSONField(default=dict, blank=True)
    # Secret settings, Fernet-encrypted JSON (channels.crypto); never shown back in full.
    secrets_encrypted = models.TextField(blank=True, default="")
    topics = models.ManyToManyField(
        "publishing.Topic",
        blank=True,
        related_name="channels",
        help_text="Broadcast channels carry publications of these topics; none means all.",
    )
    # What recovery does with a message that may have arrived (decision 0068); empty: the
    # kind's default (resend for email and webhooks, skip for Slack and Discord).
    uncertain_policy = models.CharField(
        max_length=10,
        blank=True,
        default="",
        choices=[
            ("", "The kind's default"),
            ("resend", "Resend (at least once)"),
            ("skip", "Skip (at most once)"),
        ],
        help_text=(
            "When a worker dies after handing a message over but before the answer, the "
            "message may or may not have arrived. Resend: send it again (email keeps its "
            "Message-ID, webhooks their webhook-id, so receivers can drop the repeat). Skip: "
            "do not send it again; it stays 'uncertain' until an operator re-queues it. Empty: "
            "resend for email and webhooks, skip for Slack and Discord."
        ),
    )
    rate_limit_per_second = models.FloatField(
        null=True, blank=True, help_text="Messages per second across all workers; empty: no limit."
    )
    batch_size = models.PositiveIntegerField(default=100)
    # Engagement tracking (decision 0078): off unless an administrator switches it on.
    tracking = models.BooleanField(
        "track opens and clicks",
        default=False,
        db_default=False,
        help_text=(
            "Email: an open pixel and click redirects; Slack and Discord: click redirects. "
            "Subscribers who opt out of tracking in their preferences get untracked mail."
        ),
    )
    circuit_state = models.CharField(
        max_length=20, choices=CircuitState.choices, default=CircuitState.CLOSED
    )
    circuit_opened_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=1000, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    # Set when the engine switched the channel off because the provider said it is gone for
    # good (decision 0085); cleared when someone enables it again.
    disabled_reason = models.CharField(max_length=500, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ChannelQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default_email"],
                condition=Q(is_default_email=True),
                name="one_default_email_channel",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_email(self) -> bool:
        return self.kind.startswith("email")

    @property
    def effective_uncertain_policy(self) -> str:
        """``uncertain_policy``, or the kind's default when it is empty."""
        if self.uncertain_policy:
            return self.uncertain_policy
        from channels.backends.base import BackendError, get_backend_class

        try:
            return str(get_backend_class(self.kind).default_uncertain_policy)
        except BackendError:
            return "resend"


class RateBucket(models.Model):
    """The shared rate limiter of one channel (GCRA: the theoretical arrival time of the next slot).

    ``tat`` is in seconds since the epoch of the database clock, so every worker on every host
    reads the same time. See channels.engine.pacing.reserve_rate.
    """

    channel = models.OneToOneField(
        Channel, primary_key=True, on_delete=models.CASCADE, related_name="rate_bucket"
    )
    tat = models.FloatField(default=0.0)

    def __str__(self) -> str:
        return f"Rate bucket of channel {self.channel_id}"


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def due(self, now: datetime) -> DeliveryQuerySet:
        """Queued deliveries whose next attempt time has come."""
        return self.filter(status=Delivery.Status.QUEUED, next_attempt_at__lte=now)

    def lease_expired(self, now: datetime) -> DeliveryQuerySet:
        """Deliveries claimed by a worker that has not finished in time (it probably died)."""
        return self.filter(status=Delivery.Status.SENDING, lease_expires_at__lt=now)

    def settled(self) -> DeliveryQuerySet:
        return self.filter(status__in=Delivery.SETTLED)

    def unsettled(self) -> DeliveryQuerySet:
        # The statuses named, not the settled ones excluded: ``status IN (...)`` is a range of
        # the (dispatch, status) index, where ``NOT IN`` can only filter the dispatch's
        # entries (decision 0093).
        return self.filter(status__in=Delivery.UNSETTLED)


class Delivery(models.Model):
    """One message for one recipient on one channel: the ledger row the engine works from."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        DEAD = "dead", "Dead"
        CANCELLED = "cancelled", "Cancelled (recipient left before sending)"
        #: Handed over, no answer, not sent again: the channel's policy is skip.
        UNCERTAIN = "uncertain", "Uncertain (may have arrived; not resent)"
        #: Waiting while its dispatch is paused by a guardrail (decision 0085); not claimed.
        HELD = "held", "Held (its dispatch is paused)"

    class Kind(models.TextChoices):
        SUBSCRIBER = "subscriber", "To a subscriber"
        BROADCAST = "broadcast", "To a broadcast channel"
        TRANSACTIONAL = "transactional", "Site mail (confirmation, test send)"
        DIGEST = "digest", "A subscriber's daily or weekly digest"
        EVENT = "event", "An event to a webhook endpoint"

    #: Statuses the engine never changes again on its own.
    SETTLED = (Status.SENT, Status.FAILED, Status.DEAD, Status.CANCELLED, Status.UNCERTAIN)
    #: The others: the engine still has work to do (or waits for a paused dispatch).
    UNSETTLED = (Status.QUEUED, Status.SENDING, Status.HELD)
    #: Statuses an operator may put back in the queue.
    REQUEUEABLE = (Status.FAILED, Status.DEAD, Status.UNCERTAIN)
    #: Claim order: lower first, so site mail waits behind a large dispatch at most
    #: DELIVERY_CLAIM_RESCAN_SECONDS (decision 0092).
    PRIORITY_TRANSACTIONAL = 10
    PRIORITY_BULK = 100
    #: Every priority the engine writes; the wake-up of due retries looks at each.
    PRIORITIES = (PRIORITY_TRANSACTIONAL, PRIORITY_BULK)
    #: The order the claim takes due rows in: the ``delivery_due`` index's own. A query of due
    #: rows asks for it even when it needs no order, so the planner reads that index.
    CLAIM_ORDER = ("priority", "next_attempt_at", "pk")

    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.SUBSCRIBER)
    # Empty for transactional mail, which belongs to no publication.
    # No single-column index on dispatch or channel: (dispatch, status) and (channel, status)
    # below begin with them and serve every query by either (and the cascades); each index
    # costs an entry at every row version, three per message (issue 18, docs/performance.md).
    dispatch = models.ForeignKey(
        "publishing.Dispatch",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
    )
    channel = models.ForeignKey(
        Channel, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    # Empty for broadcast and transactional deliveries, and once a subscriber is erased.
    subscriber = models.ForeignKey(
        "subscribers.Subscriber",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    # Transactional mail only: the address and the complete message as Django built it.
    recipient = models.CharField(max_length=254, blank=True)
    raw_message = models.BinaryField(null=True, blank=True)
    priority = models.PositiveSmallIntegerField(default=PRIORITY_BULK)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # The last time a hand-over of this delivery got no answer (a timeout after the request
    # left, or a worker killed in between): it may have arrived twice if it was resent.
    uncertain_at = models.DateTimeField(null=True, blank=True)
    # Which A/B subject the message carries (its index in the version's subjects; decision
    # 0079); null outside a test.
    variant = models.PositiveSmallIntegerField(null=True, blank=True)
    # The translation the message carries (its language; decision 0082), chosen at fan-out
    # from the subscriber's language and the translations the dispatch pinned; empty: the
    # original. db_default: the fan-out and imports write rows in SQL naming their columns.
    language = models.CharField(max_length=10, blank=True, default="", db_default="")
    # Kind "event" only: the event this delivery carries to its endpoint (decision 0084).
    # Indexed by the partial index ``delivery_event``: a plain index would hold a NULL entry for
    # every other row, at each of its row versions.
    event = models.ForeignKey(
        "events.Event",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
    )

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["dispatch", "channel", "subscriber"],
                condition=Q(kind="subscriber"),
                name="one_delivery_per_recipient",
            ),
            models.UniqueConstraint(
                fields=["dispatch", "channel"],
                condition=Q(kind="broadcast"),
                name="one_broadcast_per_channel",
            ),
            # An event reaches each endpoint once; a replay re-queues that row.
            models.UniqueConstraint(
                fields=["event", "channel"],
                condition=Q(kind="event"),
                name="one_delivery_per_event_and_endpoint",
            ),
        ]
        indexes = [
            # The claim: queued rows of a channel whose time has come, by priority, oldest first,
            # then by id: the claim's whole ORDER BY, so it reads a batch's worth of entries
            # in index order instead of sorting every due row (a fan-out gives them all the
            # same next_attempt_at).
            models.Index(
                fields=["channel", "priority", "next_attempt_at", "id"],
                condition=Q(status="queued"),
                name="delivery_due",
            ),
            # The sweeper: rows whose lease ran out.
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(status="sending"),
                name="delivery_lease",
            ),
            models.Index(fields=["dispatch", "status"], name="delivery_dispatch_status"),
            models.Index(fields=["channel", "status"], name="delivery_channel_status"),
            # Uncertain hand-overs (decision 0068), for /metrics and the admin: a handful of
            # rows, so a partial index that costs nothing to the rows that never have one.
            models.Index(
                fields=["channel", "uncertain_at"],
                condition=Q(uncertain_at__isnull=False),
                name="delivery_uncertain",
            ),
            # An event's deliveries (cascades, replay): event rows only.
            models.Index(fields=["event"], condition=Q(event__isnull=False), name="delivery_event"),
            # SES feedback finds its delivery by the provider's message id (decision 0043).
            # Partial: most rows of a large dispatch are not sent yet, or never will be.
            models.Index(
                fields=["provider_message_id"],
                condition=~Q(provider_message_id=""),
                name="delivery_provider_message_id",
            ),
        ]

    def __str__(self) -> str:
        return f"Delivery {self.pk} ({self.status})"


class SesFeedback(models.Model):
    """One SES bounce or complaint received through SNS, kept once per SNS MessageId.

    The unique ``sns_message_id`` is what makes a replayed notification change nothing; the row
    is also the audit trail the Delivery admin shows. Addresses are kept only as hashes
    (``detail``), so erasing a subscriber leaves nothing here to scrub. Decision 0043.
    """

    class Type(models.TextChoices):
        BOUNCE = "bounce", "Bounce"
        COMPLAINT = "complaint", "Complaint"

    sns_message_id = models.CharField(max_length=100, unique=True)
    topic_arn = models.CharField(max_length=256)
    type = models.CharField(max_length=20, choices=Type.choices)
    # Bounces: Permanent, Transient or Undetermined; complaints: the feedback type, if any.
    subtype = models.CharField(max_length=50, blank=True)
    # SES's id of the message (mail.messageId), which the delivery holds as provider_message_id.
    provider_message_id = models.CharField(max_length=255, blank=True)
    delivery = models.ForeignKey(
        Delivery,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="ses_feedback",
    )
    suppressed = models.PositiveIntegerField(
        default=0, help_text="Addresses this feedback put on the suppression list."
    )
    # Per recipient: email_hash, SES action/status, diagnostic with the address removed.
    detail = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "SES feedback"
        verbose_name_plural = "SES feedback"
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.get_type_display()} {self.subtype} ({self.sns_message_id})"


class SoftBounce(models.Model):
    """One transient bounce of an address (SES ``Transient``), kept to suppress an address that
    keeps bouncing (decision 0085). The address is a hash, as on the suppression list."""

    email_hash = models.CharField(max_length=64)
    feedback = models.ForeignKey(SesFeedback, on_delete=models.CASCADE, related_name="+")
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["email_hash", "occurred_at"], name="softbounce_hash")]

    def __str__(self) -> str:
        return f"Soft bounce {self.email_hash[:12]}… at {self.occurred_at:%Y-%m-%d %H:%M}"


class Digest(models.Model):
    """One subscriber's digest of one period: the record that makes it exactly once.

    Written in the transaction that creates its Delivery (channels.digests): the unique
    constraint on (subscriber, frequency, period_end) means a second run, or a concurrent one,
    finds the period taken. The next digest of that frequency starts at this one's
    ``period_end``, so a publication is never listed twice nor skipped.
    """

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    subscriber = models.ForeignKey(
        "subscribers.Subscriber", on_delete=models.CASCADE, related_name="digests"
    )
    frequency = models.CharField(max_length=10, choices=Frequency.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    delivery = models.OneToOneField(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="digest"
    )
    publications = models.ManyToManyField(
        "publishing.Publication", related_name="digests", blank=True
    )
    # The tracked links of this digest's message, in order (channels.tracking): a digest lists
    # its own publications, so its links are its own, not a version's.
    links = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_end", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "frequency", "period_end"], name="one_digest_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_frequency_display()} digest of {self.subscriber_id} to {self.period_end}"


class WorkerHeartbeat(models.Model):
    """Written by each django-q2 cluster while it polls: how /readyz knows a worker is alive."""

    name = models.CharField(max_length=200, unique=True)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.seen_at:%H:%M:%S}"


class SendStat(models.Model):
    """A counter of one channel that workers add to after each batch and /metrics reads.

    Keys: ``latency_le_<bound>`` (send-latency histogram buckets, not cumulative),
    ``latency_sum``, ``latency_count`` and ``throttled``. Kept in the database so that every
    worker process, on any host, adds to the same series (decision 0060).
    """

    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="send_stats")
    key = models.CharField(max_length=50)
    value = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "key"], name="one_send_stat_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} of channel {self.channel_id}"


class TrackedLink(models.Model):
    """The links of one version's message on one surface (``email``, or a broadcast kind), in
    order: a tracked URL names a link by its index, so the target is never read from the
    request (no open redirect). Written once, the first time a version is prepared."""

    version = models.ForeignKey(
        "publishing.HistoricalPublication", on_delete=models.CASCADE, related_name="+"
    )
    surface = models.CharField(max_length=20)
    index = models.PositiveSmallIntegerField()
    url = models.CharField(max_length=2048)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["version", "surface", "index"], name="trackedlink_unique_index"
            )
        ]

    def __str__(self) -> str:
        return f"{self.surface} link {self.index} of version {self.version_id}: {self.url}"


class EngagementEvent(models.Model):
    """One open (the pixel fetched) or click (a tracked link followed), appended as it happens
    and classified later (channels.engagement): human, proxy (an open fetched by a mail
    provider's image proxy: Apple Mail Privacy Protection, Gmail, Yahoo) or machine, with the
    rule that decided. Nothing on the delivery row is updated per hit (decision 0078).

    ``ip`` is kept only until the event is classified, then cleared.
    """

    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        CLICK = "click", "Click"

    class Verdict(models.TextChoices):
        PENDING = "", "Not classified yet"
        HUMAN = "human", "Human"
        PROXY = "proxy", "Opened (proxy)"
        MACHINE = "machine", "Machine"

    id = models.BigAutoField(primary_key=True)
    # No database constraint: its check locks the delivery row on every hit (concurrent hits on
    # one delivery then queue on that lock). channels.tracking.record inserts only when the
    # delivery exists, and deleting a delivery deletes its events (Django's cascade).
    delivery = models.ForeignKey(
        Delivery, on_delete=models.CASCADE, related_name="events", db_constraint=False
    )
    kind = models.CharField(max_length=5, choices=Kind.choices)
    link_index = models.PositiveSmallIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    method = models.CharField(max_length=8)
    user_agent = models.CharField(max_length=512, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    verdict = models.CharField(max_length=8, choices=Verdict.choices, blank=True, default="")
    reason = models.CharField(max_length=40, blank=True)
    # Set on events that went through the Redis buffer (channels.tracking_buffer): moving them
    # twice after a crash inserts them once. Empty for events inserted directly.
    key = models.CharField(max_length=16, null=True, blank=True, unique=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"],
                condition=models.Q(verdict=""),
                name="event_pending",
            ),
            models.Index(fields=["delivery", "occurred_at"], name="event_delivery_time"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of delivery {self.delivery_id} ({self.verdict or 'new'})"


class DeliveryEngagement(models.Model):
    """What a delivery's classified events amount to, kept by the classifier as it judges them
    (channels.analytics): whether and when a person first opened or clicked, whether a proxy
    fetched it, and the counts. One row per engaged delivery, so a publication's funnel is an
    aggregate over its engaged deliveries, never over its events."""

    delivery = models.OneToOneField(
        Delivery, primary_key=True, on_delete=models.CASCADE, related_name="engagement"
    )
    publication_id = models.BigIntegerField(db_index=True)
    first_human_open_at = models.DateTimeField(null=True, blank=True)
    first_human_click_at = models.DateTimeField(null=True, blank=True)
    first_proxy_open_at = models.DateTimeField(null=True, blank=True)
    human_opens = models.PositiveIntegerField(default=0)
    human_clicks = models.PositiveIntegerField(default=0)
    proxy_opens = models.PositiveIntegerField(default=0)
    machine_opens = models.PositiveIntegerField(default=0)
    machine_clicks = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"Engagement of delivery {self.delivery_id}"


class EngagementCounter(models.Model):
    """A publication's running count of one thing (clicks on one link, opens in one hour after
    sending...), incremented by the classifier: the analytics page reads a few rows, whatever
    the number of events (channels.analytics)."""

    publication_id = models.BigIntegerField()
    metric = models.CharField(max_length=40)
    key = models.CharField(max_length=40, blank=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["publication_id", "metric", "key"], name="engagementcounter_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.metric}[{self.key}] of publication {self.publication_id}: {self.count}"


class PublicationAnalytics(Publication):
    """The publications, seen from their engagement: the analytics pages of the admin
    (channels.admin_analytics). A proxy: no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "publication analytics"
        verbose_name_plural = "publication analytics"


# Webhook endpoints for events and their attempts live in a module of their own (decision 0084).
from channels.event_models import EventAttempt, WebhookEndpoint  # noqa: E402

__all__ = [
    "Channel",
    "ChannelQuerySet",
    "Delivery",
    "DeliveryEngagement",
    "DeliveryQuerySet",
    "Digest",
    "EngagementCounter",
    "EngagementEvent",
    "EventAttempt",
    "PublicationAnalytics",
    "RateBucket",
    "SendStat",
    "SesFeedback",
    "TrackedLink",
    "WebhookEndpoint",
    "WorkerHeartbeat",
]
