"""DMARC as RFC 9989 (DMARCbis) defines it: policy discovery by DNS tree walk, the tags
(``p``, ``sp``, ``np``, ``psd``, ``t``, ``adkim``, ``aspf``, ``rua``), the tags it removed
(``pct``, ``rf``, ``ri``) and identifier alignment of the From domain with the domains SPF and
DKIM authenticate.

The organizational domain comes from the same tree walk (RFC 9989 4.10), not from a public
suffix list: the domain of a ``psd=n`` record, the one just below a ``psd=y`` record, else the
shortest domain publishing a record, else the domain itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.doctor.dkim import tags
from channels.doctor.dns import DnsLookupError, DnsReader
from channels.doctor.findings import Level, Report

CHECK = "dmarc"
SOURCE = "RFC 9989"
#: The tree walk never asks about more than this many labels (RFC 9989 4.10.1).
MAX_LABELS = 8
REMOVED_TAGS = ("pct", "rf", "ri")
POLICIES = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class Found:
    """The DMARC record(s) published at ``domain`` (``_dmarc.<domain>``)."""

    domain: str
    records: list[str]

    @property
    def tags(self) -> dict[str, str]:
        return tags(self.records[0]) if self.records else {}


def records_at(reader: DnsReader, domain: str) -> list[str]:
    return [
        text
        for text in reader.txt(f"_dmarc.{domain}")
        if text.replace(" ", "").lower().startswith("v=dmarc1")
    ]


def walk(domain: str) -> list[str]:
    """The domains the tree walk asks about, from ``domain`` up to its top-level label."""
    labels = domain.lower().rstrip(".").split(".")
    names = [".".join(labels)]
    while len(labels) > 1:
        labels = labels[-(MAX_LABELS - 1) :] if len(labels) >= MAX_LABELS else labels[1:]
        names.append(".".join(labels))
    return names


def discover(reader: DnsReader, domain: str) -> Found | None:
    """The record that governs ``domain``: its own, else the first one up the tree."""
    for name in walk(domain):
        found = records_at(reader, name)
        if found:
            return Found(name, found)
    return None


def organizational_domain(reader: DnsReader, domain: str) -> str:
    names = walk(domain)
    shortest = None
    for index, name in enumerate(names):
        found = records_at(reader, name)
        if len(found) != 1:
            continue
        psd = tags(found[0]).get("psd", "u").lower()
        if psd == "n":
            return name
        if psd == "y":
            return names[index - 1] if index else name
        shortest = name
    return shortest or domain.lower()


def aligned(reader: DnsReader, authenticated: str, author: str, mode: str) -> bool:
    """``authenticated`` (an SPF or DKIM domain) aligns with the From domain ``author``."""
    authenticated, author = authenticated.lower(), author.lower()
    if mode == "s":
        return authenticated == author
    return authenticated == author or organizational_domain(
        reader, authenticated
    ) == organizational_domain(reader, author)


def check_dmarc(
    report: Report,
    reader: DnsReader,
    domain: str,
    *,
    spf_domains: list[str],
    dkim_domains: list[str],
) -> None:
    """Report on the DMARC policy governing ``domain`` and whether its mail can pass it: SPF
    passing for one of ``spf_domains`` or DKIM for one of ``dkim_domains``, aligned."""
    try:
        found = discover(reader, domain)
        if found is None:
            _missing(report, reader, domain)
            return
        if len(found.records) > 1:
            report.add(
                CHECK,
                domain,
                Level.FAILURE,
                f"_dmarc.{found.domain} publishes {len(found.records)} DMARC records: receivers "
                "ignore them all.",
                f"Keep one TXT record at _dmarc.{found.domain}.",
                f"{SOURCE} 4.10.1",
            )
            return
        problems = _check_tags(report, domain, found)
        problems += _check_alignment(report, reader, domain, found, spf_domains, dkim_domains)
    except DnsLookupError as exc:
        report.add(CHECK, domain, Level.WARNING, f"Could not read the DMARC policy: {exc}")
        return
    if not problems:
        values = found.tags
        report.add(
            CHECK,
            domain,
            Level.OK,
            f"Policy p={values.get('p')} at _dmarc.{found.domain}, aligned, reports to "
            f'{values.get("rua")}: "{found.records[0]}"',
            source=SOURCE,
        )


def _missing(report: Report, reader: DnsReader, domain: str) -> None:
    org = organizational_domain(reader, domain)
    report.add(
        CHECK,
        domain,
        Level.FAILURE,
        f"No DMARC record governs {domain} (none at _dmarc.{domain} nor above it): Gmail and "
        "Yahoo reject bulk mail without one.",
        f'Publish TXT _dmarc.{org} "v=DMARC1; p=none; rua=mailto:dmarc-reports@{org}", read the '
        "reports, then move to p=quarantine.",
        f"{SOURCE} 4.10; Gmail and Yahoo sender requirements (2024)",
    )


def _policy(domain: str, found: Found) -> tuple[str, str]:
    """(tag name, value) of the policy applying to ``domain``: ``p`` at the policy domain,
    ``sp`` (else ``p``) below it."""
    values = found.tags
    if domain.lower() != found.domain and "sp" in values:
        return "sp", values["sp"].lower()
    return "p", values.get("p", "").lower()


def _check_tags(report: Report, domain: str, found: Found) -> int:
    values = found.tags
    record = found.records[0]
    name = f"_dmarc.{found.domain}"
    problems = 0
    tag, policy = _policy(domain, found)
    if policy not in POLICIES:
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.FAILURE if policy else Level.WARNING,
            f"{name} has {'an invalid ' + tag + '=' + policy if policy else 'no p= tag'}: "
            "receivers apply no policy (p=none).",
            f'Publish TXT {name} "{_replace(record, tag, "quarantine")}"',
            f"{SOURCE} 4.7 and 4.8",
        )
    elif policy == "none":
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.WARNING,
            f"{name} asks for no action ({tag}=none): mail forged as {domain} is delivered. "
            "Gmail and Yahoo accept it for bulk mail, but it protects nothing.",
            f"Once the aggregate reports show your mail aligned, publish TXT {name} "
            f'"{_replace(record, tag, "quarantine")}"',
            f"{SOURCE} 4.7; Gmail and Yahoo sender requirements (2024)",
        )
    problems += _check_bis_tags(report, domain, found)
    if not values.get("rua"):
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.WARNING,
            f"{name} has no rua=: nobody receives the aggregate reports that show which mail "
            "passes and fails.",
            f'Publish TXT {name} "{record.rstrip("; ")}; rua=mailto:dmarc-reports@{found.domain}"',
            "RFC 9990",
        )
    return problems


def _check_bis_tags(report: Report, domain: str, found: Found) -> int:
    values = found.tags
    record = found.records[0]
    name = f"_dmarc.{found.domain}"
    problems = 0
    removed = [tag for tag in REMOVED_TAGS if tag in values]
    if removed:
        problems += 1
        pct = values.get("pct")
        note = (
            f" With pct={pct} older receivers apply the policy to only {pct}% of failing mail; "
            "DMARCbis receivers apply it to all. For a trial, t=y replaces it."
            if pct not in (None, "100")
            else ""
        )
        report.add(
            CHECK,
            domain,
            Level.WARNING,
            f"{name} uses {', '.join(t + '=' for t in removed)}, removed by DMARCbis "
            f"(pct is gone; t=y is its replacement).{note}",
            f'Publish TXT {name} "{_without(record, removed)}"',
            f"{SOURCE} (changes from RFC 7489)",
        )
    if values.get("t", "n").lower() == "y":
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.WARNING,
            f"{name} is in testing mode (t=y): receivers apply one step less than the policy.",
            f'When the trial is over, publish TXT {name} "{_without(record, ["t"])}"',
            f"{SOURCE} 4.7",
        )
    if values.get("psd", "u").lower() == "y":
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"{name} says psd=y: it declares {found.domain} a public suffix (like a TLD), so "
            "receivers take the organizational domain one label lower and relaxed alignment "
            "breaks.",
            f'Publish TXT {name} "{_without(record, ["psd"])}"',
            f"{SOURCE} 4.7 and 4.10.2",
        )
    return problems


def _check_alignment(
    report: Report,
    reader: DnsReader,
    domain: str,
    found: Found,
    spf_domains: list[str],
    dkim_domains: list[str],
) -> int:
    values = found.tags
    aspf, adkim = values.get("aspf", "r").lower(), values.get("adkim", "r").lower()
    spf_ok = [d for d in spf_domains if aligned(reader, d, domain, aspf)]
    dkim_ok = [d for d in dkim_domains if aligned(reader, d, domain, adkim)]
    if spf_ok or dkim_ok:
        return 0
    mode = {"s": "strict", "r": "relaxed"}
    report.add(
        CHECK,
        domain,
        Level.FAILURE,
        f"Mail from {domain} cannot pass DMARC: SPF authenticates "
        f"{', '.join(spf_domains) or 'no domain'} ({mode.get(aspf, aspf)} alignment) and DKIM "
        f"{', '.join(dkim_domains) or 'no domain'} ({mode.get(adkim, adkim)} alignment), none "
        f"aligned with {domain}.",
        f"Have the provider sign with d={domain} (publish its DKIM key under {domain}), or "
        f"use a MAIL FROM (return-path) domain under {domain}"
        + (
            f"; or, if a parent domain signs, relax alignment: "
            f'TXT _dmarc.{found.domain} "{_replace(found.records[0], "adkim", "r")}"'
            if adkim == "s"
            else ""
        ),
        f"{SOURCE} 3.2.10 and 4.4",
    )
    return 1


def _without(record: str, names: list[str]) -> str:
    parts = [part.strip() for part in record.split(";") if part.strip()]
    kept = [part for part in parts if part.split("=", 1)[0].strip().lower() not in names]
    return "; ".join(kept)


def _replace(record: str, name: str, value: str) -> str:
    """``record`` with tag ``name`` set to ``value``; a record the doctor suggests never keeps
    a tag DMARCbis removed (pct, rf, ri)."""
    parts = [
        part.strip()
        for part in record.split(";")
        if part.strip() and part.split("=", 1)[0].strip().lower() not in REMOVED_TAGS
    ]
    replaced = [
        f"{name}={value}" if part.split("=", 1)[0].strip().lower() == name else part
        for part in parts
    ]
    if replaced == parts and not any(p.split("=", 1)[0].strip().lower() == name for p in parts):
        replaced.insert(1, f"{name}={value}")
    return "; ".join(replaced)
