"""SPF (RFC 7208): one record, at most 10 DNS lookups, an ending that protects, the provider.

The lookup count follows RFC 7208 4.6.4: ``include``, ``a``, ``mx``, ``ptr``, ``exists`` and the
``redirect`` modifier each cost one, counted through every include; more than 10 is a
permanent error, and receivers then treat the mail as having no SPF at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.doctor.dns import DnsLookupError, DnsReader
from channels.doctor.findings import Level, Report

CHECK = "spf"
MAX_LOOKUPS = 10
LOOKUP_MECHANISMS = frozenset({"include", "a", "mx", "ptr", "exists"})
SOURCE = "RFC 7208"


class SpfError(Exception):
    """The record cannot be evaluated: a receiver's permerror."""


def spf_records(reader: DnsReader, domain: str) -> list[str]:
    """The TXT records of ``domain`` that are SPF records (``v=spf1`` then a space or nothing)."""
    return [
        text
        for text in reader.txt(domain)
        if text.lower() == "v=spf1" or text.lower().startswith("v=spf1 ")
    ]


@dataclass(frozen=True)
class Term:
    qualifier: str
    name: str
    value: str


def terms(record: str) -> list[Term]:
    """The mechanisms and modifiers after ``v=spf1``, lowercased names."""
    parsed: list[Term] = []
    for raw in record.split()[1:]:
        if "=" in raw and ":" not in raw.split("=", 1)[0]:
            name, _, value = raw.partition("=")
            parsed.append(Term("", name.lower(), value))
            continue
        qualifier = raw[0] if raw[0] in "+-~?" else "+"
        body = raw[1:] if raw[0] in "+-~?" else raw
        name, _, value = body.partition(":")
        if "/" in name:
            name, _, _cidr = name.partition("/")
        parsed.append(Term(qualifier, name.lower(), value))
    return parsed


def count_lookups(reader: DnsReader, record: str, seen: frozenset[str] = frozenset()) -> int:
    """The DNS lookups evaluating ``record`` costs, includes and redirects followed.

    Raises SpfError for an include or redirect without exactly one SPF record, or a loop.
    """
    total = 0
    for term in terms(record):
        if term.name in LOOKUP_MECHANISMS or term.name == "redirect":
            total += 1
        if term.name in {"include", "redirect"} and term.value:
            target = term.value.lower().rstrip(".")
            if target in seen:
                raise SpfError(f"{term.name}:{target} loops back to a record already included")
            found = spf_records(reader, target)
            if len(found) != 1:
                raise SpfError(
                    f"{term.name}:{target} has {len(found)} SPF records (exactly one needed)"
                )
            total += count_lookups(reader, found[0], seen | {target})
        if total > MAX_LOOKUPS:
            break
    return total


def ending(reader: DnsReader, record: str) -> str | None:
    """The qualifier of the record's ``all`` (through a redirect when it has none)."""
    for term in terms(record):
        if term.name == "all":
            return term.qualifier
    for term in terms(record):
        if term.name == "redirect" and term.value:
            found = spf_records(reader, term.value)
            return ending(reader, found[0]) if len(found) == 1 else None
    return None


def with_include(record: str, include: str) -> str:
    """``record`` with ``include:<include>`` added before its ending."""
    parts = record.split()
    at = next(
        (i for i, part in enumerate(parts) if part.lstrip("+-~?").lower() == "all"), len(parts)
    )
    return " ".join([*parts[:at], f"include:{include}", *parts[at:]])


def merged(records: list[str]) -> str:
    """One record holding every mechanism of ``records``, ending ``~all``."""
    seen: list[str] = []
    for record in records:
        for part in record.split()[1:]:
            if part.lstrip("+-~?").lower() != "all" and part not in seen:
                seen.append(part)
    return " ".join(["v=spf1", *seen, "~all"])


def check_spf(
    report: Report, reader: DnsReader, domain: str, *, include: str = "", suggestion: str = ""
) -> None:
    """Report on the SPF record of ``domain``. ``include``: the provider's SPF domain the record
    must include (``amazonses.com`` for SES); ``suggestion``: a record to offer when none."""
    try:
        records = spf_records(reader, domain)
    except DnsLookupError as exc:
        report.add(CHECK, domain, Level.WARNING, f"Could not read the SPF record: {exc}")
        return
    if not records:
        proposal = suggestion or (f"v=spf1 include:{include} ~all" if include else "v=spf1 mx ~all")
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"{domain} publishes no SPF record: receivers cannot tell which servers may send "
            "for it.",
            f'Publish TXT {domain} "{proposal}"',
            "RFC 7208 3; Gmail and Yahoo sender requirements (2024)",
        )
        return
    if len(records) > 1:
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"{domain} publishes {len(records)} SPF records; receivers treat that as a permanent "
            "error, as if there were none.",
            f'Replace them with one: TXT {domain} "{merged(records)}"',
            "RFC 7208 3.2 and 4.5",
        )
        return
    _check_one(report, reader, domain, records[0], include)


def _check_one(report: Report, reader: DnsReader, domain: str, record: str, include: str) -> None:
    problems = 0
    try:
        lookups = count_lookups(reader, record, frozenset({domain}))
    except (SpfError, DnsLookupError) as exc:
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"The SPF record cannot be evaluated: {exc}.",
            f'Fix or remove that term of TXT {domain} "{record}".',
            "RFC 7208 5.2 and 4.6.4",
        )
        lookups = 0
    if lookups > MAX_LOOKUPS:
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"The SPF record needs more than {MAX_LOOKUPS} DNS lookups ({lookups} counted, "
            "includes followed): receivers stop with a permanent error.",
            f'Trim TXT {domain} "{record}": remove includes of services that no longer send '
            "for you, or replace a:, mx: and include: terms by the ip4:/ip6: ranges they name.",
            "RFC 7208 4.6.4",
        )
    if include and include not in {t.value.lower() for t in terms(record) if t.name == "include"}:
        problems += 1
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"The SPF record does not include {include}, so mail your provider sends for "
            f"{domain} fails SPF.",
            f'Publish TXT {domain} "{with_include(record, include)}"',
            SOURCE,
        )
    problems += _check_ending(report, reader, domain, record)
    if not problems:
        report.add(
            CHECK,
            domain,
            Level.OK,
            f'One SPF record, {lookups} of {MAX_LOOKUPS} DNS lookups: "{record}"',
            source=SOURCE,
        )


def _check_ending(report: Report, reader: DnsReader, domain: str, record: str) -> int:
    qualifier = ending(reader, record)
    if qualifier in {"-", "~"}:
        return 0
    stricter = " ".join(
        "~all" if part.lstrip("+-~?").lower() == "all" else part for part in record.split()
    )
    if qualifier is None:
        stricter = f"{record} ~all"
    if qualifier == "+":
        report.add(
            CHECK,
            domain,
            Level.FAILURE,
            f"The SPF record ends with +all: every server on the Internet may send as {domain}.",
            f'Publish TXT {domain} "{stricter}"',
            "RFC 7208 5.1",
        )
    else:
        report.add(
            CHECK,
            domain,
            Level.WARNING,
            "The SPF record ends neutral (?all or no all): mail from other servers is "
            "neither passed nor failed, which protects nothing.",
            f'Publish TXT {domain} "{stricter}"',
            "RFC 7208 5.1 and 8.2",
        )
    return 1
