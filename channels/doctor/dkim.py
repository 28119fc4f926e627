"""DKIM (RFC 6376): the public keys receivers will look up to verify the provider's signature.

With SES's Easy DKIM the three tokens SES gave the identity name three CNAMEs that must point
to ``<token>.dkim.amazonses.com``. Otherwise the selectors in DOCTOR_DKIM_SELECTORS are
required; with none configured, common selectors are tried and any key found counts.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from channels.doctor.dns import DnsLookupError, DnsReader
from channels.doctor.findings import Level, Report

CHECK = "dkim"
SOURCE = "RFC 6376 3.6; RFC 8301 3.2"
#: Selectors tried when none is configured: the defaults of common mail servers and providers.
COMMON_SELECTORS = (
    "default",
    "dkim",
    "mail",
    "selector1",
    "selector2",
    "google",
    "k1",
    "k2",
    "s1",
    "s2",
    "smtp",
    "key1",
    "sig1",
)
MIN_RSA_BITS = 1024
SES_DKIM_SUFFIX = "dkim.amazonses.com"


def tags(record: str) -> dict[str, str]:
    """A ``tag=value; ...`` record as a mapping, names lowercased, values without spaces."""
    found: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            found[name.strip().lower()] = "".join(value.split())
    return found


def key_problem(record: str) -> str | None:
    """What is wrong with a DKIM key record, or None when it can verify signatures."""
    values = tags(record)
    if "p" not in values:
        return "the record has no p= tag (not a DKIM key)"
    if not values["p"]:
        return "the key is revoked (empty p=)"
    if values.get("k", "rsa").lower() != "rsa":
        return None
    try:
        key = load_der_public_key(base64.b64decode(values["p"], validate=True))
    except (binascii.Error, ValueError):
        return "p= is not a public key in base64"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"the RSA key has {key.key_size} bits; receivers ignore keys under {MIN_RSA_BITS}"
    return None


def check_ses_dkim(report: Report, reader: DnsReader, domain: str, tokens: list[str]) -> bool:
    """The Easy DKIM CNAMEs of ``domain``; True when all three are in place."""
    missing = []
    for token in tokens:
        name = f"{token}._domainkey.{domain}"
        target = f"{token}.{SES_DKIM_SUFFIX}"
        try:
            found = reader.cname(name)
        except DnsLookupError as exc:
            report.add(CHECK, domain, Level.WARNING, f"Could not read {name}: {exc}")
            return False
        if found != target:
            missing.append((name, target, found))
    if not missing:
        report.add(
            CHECK,
            domain,
            Level.OK,
            f"The {len(tokens)} Easy DKIM CNAMEs of SES are published: SES signs as d={domain}.",
            source=SOURCE,
        )
        return True
    report.add(
        CHECK,
        domain,
        Level.FAILURE,
        f"{len(missing)} of SES's {len(tokens)} Easy DKIM records are missing or wrong"
        + "".join(f"; {name} is {found or 'absent'}" for name, _target, found in missing)
        + ": SES cannot sign as this domain.",
        "Publish " + "; ".join(f"CNAME {name} {target}" for name, target, _found in missing),
        "RFC 6376 3.6.2; Amazon SES Easy DKIM",
    )
    return False


def check_selectors(report: Report, reader: DnsReader, domain: str, selectors: list[str]) -> bool:
    """The keys of ``domain``: every configured selector's, else any common one's. True when a
    usable key is published (the provider can sign as ``domain``)."""
    configured = bool(selectors)
    found: list[str] = []
    for selector in selectors or list(COMMON_SELECTORS):
        name = f"{selector}._domainkey.{domain}"
        try:
            records = [r for r in reader.txt(name) if "p=" in r]
        except DnsLookupError as exc:
            report.add(CHECK, domain, Level.WARNING, f"Could not read {name}: {exc}")
            return False
        problem = key_problem(records[0]) if records else None
        if configured and (not records or problem):
            report.add(
                CHECK,
                domain,
                Level.FAILURE,
                f"DKIM selector {selector}: "
                + (problem or f"no key published at {name}")
                + ", so signatures with it fail.",
                f'Publish TXT {name} "v=DKIM1; k=rsa; p=<your provider\'s public key>" '
                "(2048-bit RSA), or remove the selector from DOCTOR_DKIM_SELECTORS.",
                SOURCE,
            )
        elif records and not problem:
            found.append(selector)
    if configured:
        if len(found) == len(selectors):
            report.add(CHECK, domain, Level.OK, f"DKIM keys published: {', '.join(found)}.")
        return bool(found)
    if found:
        report.add(
            CHECK,
            domain,
            Level.OK,
            f"DKIM keys found at common selectors: {', '.join(found)}.",
            source=SOURCE,
        )
        return True
    report.add(
        CHECK,
        domain,
        Level.FAILURE,
        f"No DKIM key found for {domain} at the common selectors "
        f"({', '.join(COMMON_SELECTORS)}): mail cannot pass DKIM, which Gmail, Yahoo and "
        "Outlook require of bulk senders.",
        f"Turn on DKIM signing at your mail provider and publish its key: TXT "
        f'<selector>._domainkey.{domain} "v=DKIM1; k=rsa; p=<public key>"; then set '
        "DOCTOR_DKIM_SELECTORS=<selector> so that this check looks there.",
        SOURCE,
    )
    return False
