"""What SES knows about a sender: its Easy DKIM tokens and custom MAIL FROM domain (SES API
v1: GetIdentityDkimAttributes, GetIdentityMailFromDomainAttributes), the account's sending
quota (GetSendQuota) and status (SES API v2: GetAccount), through boto3 with the channel's own
region, endpoint and credentials."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from channels.backends.email_ses import DEFAULT_REGION, DEFAULT_TIMEOUT
from channels.backends.safe_text import safe_error
from channels.configuration import channel_secrets
from channels.doctor.findings import Level, Report
from channels.models import Channel

CHECK = "ses"
#: Share of the 24-hour quota used above which the doctor warns.
QUOTA_WARNING_SHARE = 0.8
AWS_ERRORS = (BotoCoreError, ClientError)


@dataclass
class Identity:
    """How SES sends for one From domain."""

    #: The domain SES signs with (d=), and the Easy DKIM tokens it must find there.
    dkim_domain: str = ""
    tokens: list[str] = field(default_factory=list)
    #: The custom MAIL FROM domain, when one is set up; else SES uses its own.
    mail_from: str = ""
    error: str = ""


def client(channel: Channel, service: str) -> Any:
    """A boto3 client of ``service`` ("ses" or "sesv2") with the channel's settings."""
    config = channel.config
    secrets = channel_secrets(channel)
    timeout = float(config.get("timeout") or DEFAULT_TIMEOUT)
    return boto3.session.Session().client(
        service,
        region_name=str(config.get("region") or DEFAULT_REGION),
        endpoint_url=config.get("endpoint_url") or None,
        aws_access_key_id=secrets.get("access_key_id") or None,
        aws_secret_access_key=secrets.get("secret_access_key") or None,
        config=Config(
            connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 2}
        ),
    )


def region(channel: Channel) -> str:
    return str(channel.config.get("region") or DEFAULT_REGION)


def identity(channel: Channel, domains: list[str]) -> Identity:
    """SES's view of a From domain; ``domains``: that domain then its parents, as SES looks
    for a verified identity (the most specific one wins)."""
    ses = client(channel, "ses")
    try:
        dkim = ses.get_identity_dkim_attributes(Identities=domains)["DkimAttributes"]
        mail_from = ses.get_identity_mail_from_domain_attributes(Identities=domains)[
            "MailFromDomainAttributes"
        ]
    except AWS_ERRORS as exc:
        return Identity(error=safe_error(str(exc), channel_secrets(channel).values()))
    found = Identity()
    for domain in domains:
        attributes = dkim.get(domain) or {}
        if attributes.get("DkimEnabled") and attributes.get("DkimTokens"):
            found.dkim_domain, found.tokens = domain, list(attributes["DkimTokens"])
            break
    for domain in domains:
        attributes = mail_from.get(domain) or {}
        if attributes.get("MailFromDomain") and attributes.get("MailFromDomainStatus") in (
            "Success",
            "Pending",
        ):
            found.mail_from = str(attributes["MailFromDomain"]).lower()
            break
    return found


def check_account(report: Report, channel: Channel) -> None:
    """The account behind the channel: sending quota and rate, sending enabled, out of the
    sandbox, not under review."""
    subject = f"channel {channel.name}"
    try:
        quota = client(channel, "ses").get_send_quota()
    except AWS_ERRORS as exc:
        report.add(
            CHECK,
            subject,
            Level.WARNING,
            f"Could not read the SES sending quota: "
            f"{safe_error(str(exc), channel_secrets(channel).values())}",
        )
    else:
        _check_quota(report, channel, quota)
    try:
        account = client(channel, "sesv2").get_account()
    except AWS_ERRORS as exc:
        report.add(
            CHECK,
            subject,
            Level.WARNING,
            f"Could not read the SES account status (GetAccount): "
            f"{safe_error(str(exc), channel_secrets(channel).values())}",
            "Allow ses:GetAccount to the channel's credentials.",
        )
        return
    _check_status(report, channel, account)


def _check_quota(report: Report, channel: Channel, quota: dict[str, Any]) -> None:
    subject = f"channel {channel.name}"
    daily = float(quota.get("Max24HourSend") or 0)
    sent = float(quota.get("SentLast24Hours") or 0)
    rate = float(quota.get("MaxSendRate") or 0)
    summary = f"{sent:.0f} of {daily:.0f} messages sent in the last 24 hours, {rate:g}/s at most"
    problems = 0
    # A quota of -1 means unlimited.
    if daily > 0 and sent >= daily:
        problems += 1
        report.add(
            CHECK,
            subject,
            Level.FAILURE,
            f"The SES 24-hour quota is used up ({summary}): SES refuses more mail until the "
            "window moves on.",
            f"Ask AWS for a higher sending quota (Service Quotas, SES 'Sending quota' in "
            f"{region(channel)}).",
            "Amazon SES sending quotas",
        )
    elif daily > 0 and sent >= QUOTA_WARNING_SHARE * daily:
        problems += 1
        report.add(
            CHECK,
            subject,
            Level.WARNING,
            f"{sent / daily:.0%} of the SES 24-hour quota is used ({summary}).",
            f"Ask AWS for a higher sending quota (Service Quotas, SES 'Sending quota' in "
            f"{region(channel)}) before the next large send.",
            "Amazon SES sending quotas",
        )
    limit = channel.rate_limit_per_second
    if rate > 0 and (limit is None or limit > rate):
        problems += 1
        report.add(
            CHECK,
            subject,
            Level.WARNING,
            f"SES accepts at most {rate:g} messages per second, and the channel's rate limit is "
            f"{'not set' if limit is None else f'{limit:g}/s'}: sends above it are throttled "
            "and retried later.",
            f"Set the channel's rate limit (rate_limit_per_second) to {rate:g} or less.",
            "Amazon SES sending quotas",
        )
    if not problems:
        report.add(CHECK, subject, Level.OK, f"SES quota: {summary}.")


def _check_status(report: Report, channel: Channel, account: dict[str, Any]) -> None:
    subject = f"channel {channel.name}"
    problems = 0
    if not account.get("SendingEnabled", True):
        problems += 1
        report.add(
            CHECK,
            subject,
            Level.FAILURE,
            f"Sending is paused for this SES account in {region(channel)}.",
            "Find the reason in the SES console (Reputation metrics), fix it, then resume "
            "sending (aws sesv2 put-account-sending-attributes --sending-enabled).",
            "Amazon SES GetAccount",
        )
    if not account.get("ProductionAccessEnabled", False):
        problems += 1
        report.add(
            CHECK,
            subject,
            Level.FAILURE,
            f"The SES account is in the sandbox in {region(channel)}: it can send only to "
            "verified addresses, so subscribers get nothing.",
            "Request production access in the SES console (Account dashboard, Request "
            "production access).",
            "Amazon SES GetAccount",
        )
    status = str(account.get("EnforcementStatus") or "HEALTHY")
    if status != "HEALTHY":
        problems += 1
        report.add(
            CHECK,
            subject,
            Level.FAILURE if status == "SHUTDOWN" else Level.WARNING,
            f"AWS has this SES account under enforcement ({status}): bounces or complaints "
            "went over AWS's limits.",
            "Read the case in the SES console (Reputation metrics) and lower the bounce and "
            "complaint rates (see the rates findings).",
            "Amazon SES GetAccount",
        )
    if not problems:
        report.add(
            CHECK,
            subject,
            Level.OK,
            f"The SES account in {region(channel)} sends, has production access and is healthy.",
        )
