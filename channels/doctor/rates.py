"""The last 7 days' hard-bounce and complaint rates, from the delivery ledger.

Sent: email deliveries sent in the window. Hard bounces: SES permanent bounces received in the
window, plus SMTP deliveries refused with a 5xx answer (the relay's permanent failure). Complaints:
SES complaints received in the window. Thresholds (settings): complaints warn at 0.1% and fail
at 0.3% (Gmail's and Yahoo's sender guidelines); bounces warn at 2% and fail at 5% (Amazon
SES places an account under review at 5% and recommends staying under 2%; Gmail and Yahoo
publish no bounce figure).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from channels.doctor.findings import Level, Report
from channels.feedback import PERMANENT
from channels.models import Delivery, SesFeedback

WINDOW = timedelta(days=7)
#: Below this many messages a rate over a threshold is a warning, not a failure: one
#: complaint among a few test sends says little.
MIN_SAMPLE = 100


def counts(now: datetime) -> tuple[int, int, int]:
    """(sent, hard bounces, complaints) of email in the 7 days before ``now``."""
    since = now - WINDOW
    email = Q(channel__kind__startswith="email")
    sent = Delivery.objects.filter(email, status=Delivery.Status.SENT, sent_at__gte=since).count()
    refused = Delivery.objects.filter(
        email, status=Delivery.Status.FAILED, updated_at__gte=since, last_error__startswith="SMTP 5"
    ).count()
    feedback = SesFeedback.objects.filter(received_at__gte=since)
    bounced = feedback.filter(type=SesFeedback.Type.BOUNCE, subtype=PERMANENT).count()
    complained = feedback.filter(type=SesFeedback.Type.COMPLAINT).count()
    return sent + refused, bounced + refused, complained


def check_rates(report: Report, now: datetime | None = None) -> None:
    attempted, bounced, complained = counts(now or timezone.now())
    if not attempted:
        report.add("rates", "last 7 days", Level.OK, "No email sent in the last 7 days.")
        return
    problems = _rate(
        report,
        "bounce",
        bounced,
        attempted,
        settings.DOCTOR_BOUNCE_WARNING_RATE,
        settings.DOCTOR_BOUNCE_FAILURE_RATE,
        "Remove addresses that never confirmed or have not opened in months before the next "
        "send; import only addresses that opted in; a permanent bounce already suppresses its "
        "address.",
        "Amazon SES reputation metrics (review at 5%, keep under 2%)",
    )
    problems += _rate(
        report,
        "complaint",
        complained,
        attempted,
        settings.DOCTOR_COMPLAINT_WARNING_RATE,
        settings.DOCTOR_COMPLAINT_FAILURE_RATE,
        "Send only to subscribers who confirmed (double opt-in), make the unsubscribe link "
        "prominent, and send less often to subscribers who stopped reading.",
        "Gmail and Yahoo sender guidelines (2024): under 0.1%, never 0.3%",
    )
    if not problems:
        report.add(
            "rates",
            "last 7 days",
            Level.OK,
            f"{attempted} emails: {bounced} hard bounces ({bounced / attempted:.2%}), "
            f"{complained} complaints ({complained / attempted:.2%}).",
        )


def _rate(
    report: Report,
    name: str,
    count: int,
    attempted: int,
    warning: float,
    failure: float,
    fix: str,
    source: str,
) -> int:
    rate = count / attempted
    if rate < warning:
        return 0
    level = Level.FAILURE if rate >= failure and attempted >= MIN_SAMPLE else Level.WARNING
    limit = failure if rate >= failure else warning
    report.add(
        "rates",
        "last 7 days",
        level,
        f"The {name} rate of the last 7 days is {rate:.2%} ({count} of {attempted} emails), at "
        f"or over {limit:.1%}"
        + (f" (fewer than {MIN_SAMPLE} emails: a warning only)" if attempted < MIN_SAMPLE else "")
        + ".",
        fix,
        source,
    )
    return 1
