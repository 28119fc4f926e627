"""System checks of the delivery engine's settings (run by manage.py check and at start-up)."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_delivery_timeouts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A lease must outlive the task holding it, and django-q2 must not hand a task out again
    while its first run may still be going (decision 0033)."""
    errors: list[CheckMessage] = []
    timeout = settings.Q_CLUSTER.get("timeout")
    retry = settings.Q_CLUSTER.get("retry")
    if timeout is not None and retry is not None and retry <= timeout:
        errors.append(
            Error(
                f"Q_RETRY ({retry}) must be greater than Q_TIMEOUT ({timeout}).",
                hint="Otherwise a running task is handed to a second worker.",
                id="channels.E001",
            )
        )
    if timeout is not None and timeout >= settings.DELIVERY_LEASE_SECONDS:
        errors.append(
            Error(
                f"DELIVERY_LEASE_SECONDS ({settings.DELIVERY_LEASE_SECONDS}) must be greater "
                f"than Q_TIMEOUT ({timeout}).",
                hint="Otherwise the sweeper re-queues rows a live worker is still sending.",
                id="channels.E002",
            )
        )
    if settings.DELIVERY_JOURNAL_TTL_SECONDS <= settings.DELIVERY_LEASE_SECONDS:
        errors.append(
            Error(
                f"DELIVERY_JOURNAL_TTL_SECONDS ({settings.DELIVERY_JOURNAL_TTL_SECONDS}) must be "
                f"greater than DELIVERY_LEASE_SECONDS ({settings.DELIVERY_LEASE_SECONDS}).",
                hint="Otherwise the sent journal forgets a message before the sweeper looks it up "
                "(decision 0039).",
                id="channels.E003",
            )
        )
    task_seconds = settings.DELIVERY_TASK_SECONDS
    if timeout is not None and not 0 < task_seconds <= timeout / 4:
        errors.append(
            Error(
                f"DELIVERY_TASK_SECONDS ({task_seconds:g}) must be above 0 and at most a quarter "
                f"of Q_TIMEOUT ({timeout}).",
                hint="A task sends batches for that long, then one more batch may still run.",
                id="channels.E004",
            )
        )
    return errors


@register()
def check_metrics_access(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every METRICS_ALLOWED_IPS entry must be an address or a CIDR network."""
    from channels.views import allowed_networks

    try:
        allowed_networks()
    except ValueError as error:
        return [
            Error(
                str(error),
                hint="Use addresses or networks such as 10.0.0.0/8, comma-separated.",
                id="channels.E005",
            )
        ]
    return []


@register()
def check_ses_feedback(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SES_FEEDBACK_CERT_HOST_PATTERN must be a regular expression, the topics ARNs."""
    errors: list[CheckMessage] = []
    try:
        re.compile(settings.SES_FEEDBACK_CERT_HOST_PATTERN)
    except re.error as exc:
        errors.append(
            Error(
                f"SES_FEEDBACK_CERT_HOST_PATTERN is not a regular expression: {exc}.",
                hint=r"The default is sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?",
                id="channels.E006",
            )
        )
    for arn in settings.SES_FEEDBACK_TOPIC_ARNS:
        if not arn.strip().startswith("arn:"):
            errors.append(
                Error(
                    f"SES_FEEDBACK_TOPIC_ARNS: {arn!r} is not an SNS topic ARN.",
                    hint="e.g. arn:aws:sns:eu-west-1:123456789012:ses-feedback",
                    id="channels.E007",
                )
            )
    return errors
