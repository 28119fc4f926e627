"""MX for the domain that receives bounces (the return-path), and forward-confirmed reverse
DNS (PTR) for the addresses an SMTP channel sends from."""

from __future__ import annotations

import ipaddress

from channels.doctor.dns import DnsLookupError, DnsReader
from channels.doctor.findings import Level, Report

MX_SOURCE = "RFC 5321 5.1; RFC 7505"
PTR_SOURCE = "Gmail sender guidelines (2024): forward and reverse DNS; RFC 1912 2.1"


def check_mx(report: Report, reader: DnsReader, domain: str, expected: str = "") -> None:
    """``domain`` receives mail (bounces to the return-path); at ``expected`` if given."""
    try:
        records = reader.mx(domain)
    except DnsLookupError as exc:
        report.add("mx", domain, Level.WARNING, f"Could not read the MX records: {exc}")
        return
    target = expected or f"<the server that receives mail for {domain}>"
    hosts = [host for _preference, host in records]
    if not records:
        report.add(
            "mx",
            domain,
            Level.FAILURE,
            f"{domain} has no MX record: bounces to its return-path addresses cannot be "
            "delivered, and some receivers refuse mail from a domain that cannot receive.",
            f"Publish MX {domain} 10 {target}",
            MX_SOURCE,
        )
    elif hosts == [""]:
        report.add(
            "mx",
            domain,
            Level.FAILURE,
            f'{domain} publishes a null MX ("0 ."): it says it accepts no mail, so bounces are '
            "lost and receivers may refuse its mail.",
            f"Replace it: MX {domain} 10 {target}",
            "RFC 7505 4",
        )
    elif expected and expected not in hosts:
        report.add(
            "mx",
            domain,
            Level.FAILURE,
            f"{domain}'s MX is {', '.join(hosts)}, not {expected}: the provider cannot receive "
            "the bounces sent to it.",
            f"Publish MX {domain} 10 {expected}",
            MX_SOURCE,
        )
    else:
        report.add("mx", domain, Level.OK, f"MX: {', '.join(hosts)}.", source=MX_SOURCE)


def _host_addresses(reader: DnsReader, host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return reader.addresses(host)


def check_ptr(report: Report, reader: DnsReader, host: str) -> None:
    """Each address of the SMTP ``host`` has a PTR whose name resolves back to it."""
    subject = f"SMTP host {host}"
    try:
        addresses = _host_addresses(reader, host)
    except DnsLookupError as exc:
        report.add("ptr", subject, Level.WARNING, f"Could not resolve {host}: {exc}")
        return
    if not addresses:
        report.add(
            "ptr",
            subject,
            Level.FAILURE,
            f"{host} has no A or AAAA record: the channel cannot reach it.",
            f"Publish A {host} <the server's address>, or correct the channel's host.",
            PTR_SOURCE,
        )
        return
    for address in addresses:
        _check_address(report, reader, subject, host, address)


def _check_address(
    report: Report, reader: DnsReader, subject: str, host: str, address: str
) -> None:
    ip = ipaddress.ip_address(address)
    if not ip.is_global:
        report.add(
            "ptr",
            subject,
            Level.WARNING,
            f"{host} is {address}, not a public address: receivers see the relay's public "
            "address instead, which this check cannot know.",
            "Check the PTR of the relay's public sending address with your provider.",
            PTR_SOURCE,
        )
        return
    try:
        names = reader.ptr(address)
        confirmed = [name for name in names if address in _forward(reader, name)]
    except DnsLookupError as exc:
        report.add("ptr", subject, Level.WARNING, f"Could not read the PTR of {address}: {exc}")
        return
    if confirmed:
        report.add(
            "ptr",
            subject,
            Level.OK,
            f"{address} has PTR {confirmed[0]}, which resolves back to it.",
            source=PTR_SOURCE,
        )
        return
    found = (
        f"its PTR names {', '.join(names)}, which does not resolve back to it"
        if names
        else ("it has no PTR record")
    )
    report.add(
        "ptr",
        subject,
        Level.FAILURE,
        f"{address} ({host}) has no forward-confirmed reverse DNS: {found}. Gmail and Yahoo "
        "refuse or junk mail from such addresses.",
        f"Ask the owner of {address} (your hosting provider) to set its PTR to {host}, a name "
        f"that resolves to {address}.",
        PTR_SOURCE,
    )


def _forward(reader: DnsReader, name: str) -> list[str]:
    return [str(ipaddress.ip_address(a)) for a in reader.addresses(name)]
