"""The deliverability doctor: what ``manage.py doctor`` and the admin's Deliverability page show.

For each sending domain (the From domains of the enabled email channels and of
DEFAULT_FROM_EMAIL): SPF, DKIM, DMARC with alignment, MX of the return-path domain, and PTR of
SMTP hosts, read with dnspython (channels.doctor.dns); then SITE_URL, one-click unsubscribe on
a rendered bulk message, each SES account, and the last 7 days' bounce and complaint rates.
Reads only: it changes nothing stored (decision 0083).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr

from django.conf import settings

from channels.backends import BackendError
from channels.backends.email_common import sender as channel_sender
from channels.doctor import ses
from channels.doctor.dkim import check_selectors, check_ses_dkim
from channels.doctor.dmarc import check_dmarc, walk
from channels.doctor.dns import DnsReader
from channels.doctor.findings import Finding, Level, Report
from channels.doctor.hosts import check_mx, check_ptr
from channels.doctor.rates import check_rates
from channels.doctor.site import check_site_url, check_unsubscribe
from channels.doctor.spf import check_spf
from channels.models import Channel

__all__ = ["Finding", "Level", "Report", "Sender", "run", "sending_domains"]

SES_SPF_INCLUDE = "amazonses.com"


@dataclass
class Sender:
    """One From domain and what sends as it."""

    domain: str
    sources: list[str] = field(default_factory=list)
    ses: list[Channel] = field(default_factory=list)
    #: Channels whose envelope sender is the From address (SMTP, the .eml folder).
    direct: list[Channel] = field(default_factory=list)


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower().rstrip(".")


def sending_domains() -> list[Sender]:
    """The From domains of the enabled email channels and of DEFAULT_FROM_EMAIL."""
    senders: dict[str, Sender] = {}

    def add(domain: str, source: str, channel: Channel | None) -> None:
        if not domain:
            return
        entry = senders.setdefault(domain, Sender(domain))
        if source not in entry.sources:
            entry.sources.append(source)
        if channel is not None:
            group = entry.ses if channel.kind == "email_ses" else entry.direct
            if channel not in group:
                group.append(channel)

    for channel in Channel.objects.filter(is_enabled=True, kind__startswith="email").order_by("pk"):
        add(_domain(channel_sender(channel.config)), f"channel {channel.name}", channel)
    add(_domain(settings.DEFAULT_FROM_EMAIL), "DEFAULT_FROM_EMAIL", Channel.objects.default_email())
    return list(senders.values())


def check_domain(report: Report, reader: DnsReader, sender: Sender) -> None:
    """SPF, DKIM, DMARC and MX of one From domain, as its channels send for it."""
    domain = sender.domain
    spf_domains: list[str] = []
    dkim_domains: list[str] = []
    if sender.direct or not sender.ses:
        hosts = sorted({str(c.config.get("host")) for c in sender.direct if c.config.get("host")})
        suggestion = " ".join(["v=spf1", *(f"a:{host}" for host in hosts), "mx", "~all"])
        check_spf(report, reader, domain, suggestion=suggestion)
        check_mx(report, reader, domain)
        spf_domains.append(domain)
    needs_selectors = bool(sender.direct) or bool(settings.DOCTOR_DKIM_SELECTORS)
    for channel in sender.ses:
        signing = _check_ses_sender(report, reader, domain, channel, spf_domains)
        if signing is None:
            # No Easy DKIM for the domain: the keys must be the operator's own (BYODKIM).
            needs_selectors = True
        elif signing:
            dkim_domains.append(signing)
    if needs_selectors and check_selectors(
        report, reader, domain, list(settings.DOCTOR_DKIM_SELECTORS)
    ):
        dkim_domains.append(domain)
    check_dmarc(
        report,
        reader,
        domain,
        spf_domains=sorted(set(spf_domains)),
        dkim_domains=sorted(set(dkim_domains)),
    )


def _check_ses_sender(
    report: Report, reader: DnsReader, domain: str, channel: Channel, spf_domains: list[str]
) -> str | None:
    """The SES side of a From domain: MAIL FROM (SPF and MX) and Easy DKIM. Returns the domain
    SES signs with when its DKIM records are in place, "" when they are not, None when SES
    has no Easy DKIM for the domain (or could not be asked)."""
    try:
        found = ses.identity(channel, walk(domain)[:-1] or [domain])
    except BackendError as exc:
        report.add("ses", f"channel {channel.name}", Level.FAILURE, str(exc))
        return None
    if found.error:
        report.add(
            "ses",
            f"channel {channel.name}",
            Level.WARNING,
            f"Could not read the SES identity of {domain}: {found.error}",
            "Allow ses:GetIdentityDkimAttributes and ses:GetIdentityMailFromDomainAttributes "
            "to the channel's credentials.",
        )
        return None
    feedback = f"feedback-smtp.{ses.region(channel)}.amazonses.com"
    if found.mail_from:
        check_spf(report, reader, found.mail_from, include=SES_SPF_INCLUDE)
        check_mx(report, reader, found.mail_from, expected=feedback)
        spf_domains.append(found.mail_from)
    else:
        spf_domains.append(SES_SPF_INCLUDE)
        report.add(
            "spf",
            domain,
            Level.WARNING,
            f"SES sends {domain}'s mail with its own MAIL FROM (amazonses.com): SPF passes but "
            "does not align with the From domain, so DMARC rests on DKIM alone.",
            f"Set a custom MAIL FROM domain in SES (e.g. bounce.{domain}) and publish "
            f"MX bounce.{domain} 10 {feedback} and TXT bounce.{domain} "
            f'"v=spf1 include:{SES_SPF_INCLUDE} ~all"',
            "RFC 9989 3.2.10; Amazon SES custom MAIL FROM",
        )
    if not found.tokens:
        report.add(
            "dkim",
            domain,
            Level.WARNING,
            f"SES has no Easy DKIM tokens for {domain} or a parent domain: SES signs with a key "
            "of yours only if you published one yourself (checked below).",
            f"Verify {domain} as a domain identity in SES with Easy DKIM, then publish the three "
            "CNAMEs SES shows (or list your own selectors in DOCTOR_DKIM_SELECTORS).",
            "RFC 6376; Amazon SES Easy DKIM",
        )
        return None
    return (
        found.dkim_domain if check_ses_dkim(report, reader, found.dkim_domain, found.tokens) else ""
    )


def _ses_accounts(channels: list[Channel]) -> list[Channel]:
    """One channel per SES account and region (several channels may share one)."""
    seen: dict[tuple[str, str, str], Channel] = {}
    for channel in channels:
        key = (
            ses.region(channel),
            str(channel.config.get("endpoint_url") or ""),
            str(channel.pk if channel.secrets_encrypted else ""),
        )
        seen.setdefault(key, channel)
    return list(seen.values())


def run(reader: DnsReader | None = None) -> Report:
    """Every check, in order; reads only."""
    reader = reader or DnsReader()
    report = Report()
    senders = sending_domains()
    if not any(s.ses or s.direct for s in senders):
        report.add(
            "channels",
            "email",
            Level.WARNING,
            "No email channel is enabled: subscribers' email is not sent anywhere real.",
            "Add and enable an email channel (SES or SMTP) in the admin, under Channels.",
        )
    for sender in senders:
        check_domain(report, reader, sender)
    smtp_hosts = sorted(
        {
            str(channel.config["host"])
            for sender in senders
            for channel in sender.direct
            if channel.kind == "email_smtp" and channel.config.get("host")
        }
    )
    for host in smtp_hosts:
        check_ptr(report, reader, host)
    check_site_url(report)
    check_unsubscribe(report, Channel.objects.default_email())
    for channel in _ses_accounts([c for s in senders for c in s.ses]):
        try:
            ses.check_account(report, channel)
        except BackendError as exc:
            report.add("ses", f"channel {channel.name}", Level.FAILURE, str(exc))
    check_rates(report)
    return report
