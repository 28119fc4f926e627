"""DNS reads for the doctor, through dnspython, from DOCTOR_NAMESERVERS or the system resolver.

Every answer is cached for the run (SPF includes and DMARC tree walks ask the same names
again). A name without records answers an empty list; a lookup that fails (timeout, no
server answering, SERVFAIL) raises ``DnsLookupError``, which the checks turn into a warning:
the doctor cannot say a record is missing when it could not ask.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
import dns.reversename
from django.conf import settings

from config.errors import ProjectError


class DnsLookupError(ProjectError):
    """A DNS question got no usable answer (not "no such record": that is an empty list)."""

    code = "dns_lookup_failed"
    status = 502


def nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    """``host`` or ``host:port`` (``[v6]:port`` for IPv6) as a dnspython nameserver."""
    host, port = entry, 53
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = int(rest.lstrip(":") or 53)
    elif entry.count(":") == 1:
        host, _, number = entry.partition(":")
        port = int(number)
    return dns.nameserver.Do53Nameserver(host, port)


class DnsReader:
    """Cached lookups against one resolver."""

    def __init__(self, nameservers: list[str] | None = None, timeout: float | None = None) -> None:
        entries = settings.DOCTOR_NAMESERVERS if nameservers is None else nameservers
        lifetime = settings.DOCTOR_DNS_TIMEOUT if timeout is None else timeout
        if entries:
            self.resolver = dns.resolver.Resolver(configure=False)
            self.resolver.nameservers = [nameserver(entry) for entry in entries]
        else:
            self.resolver = dns.resolver.Resolver()
        self.resolver.lifetime = lifetime
        self.resolver.timeout = lifetime
        self._answers: dict[tuple[str, str], list[Any]] = {}

    def records(self, name: str, rdtype: str) -> list[Any]:
        """The rdata of ``name``'s ``rdtype`` records; [] when the name or the type has none."""
        key = (name.lower().rstrip("."), rdtype)
        if key not in self._answers:
            try:
                answer = self.resolver.resolve(key[0] + ".", rdtype, search=False)
                self._answers[key] = list(answer)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                self._answers[key] = []
            except (dns.resolver.NoNameservers, dns.exception.Timeout) as exc:
                raise DnsLookupError(f"{rdtype} {key[0]}: {exc}") from None
            except dns.exception.DNSException as exc:
                raise DnsLookupError(f"{rdtype} {key[0]}: {exc}") from None
        return self._answers[key]

    def txt(self, name: str) -> list[str]:
        """Each TXT record of ``name``, its strings joined (RFC 7208 3.3)."""
        return [
            b"".join(record.strings).decode("utf-8", errors="replace")
            for record in self.records(name, "TXT")
        ]

    def cname(self, name: str) -> str | None:
        """Where ``name`` is a CNAME to, without the final dot; None when it is not one."""
        for record in self.records(name, "CNAME"):
            return str(record.target).rstrip(".").lower()
        return None

    def mx(self, name: str) -> list[tuple[int, str]]:
        """(preference, host) of each MX record, lowest preference first."""
        return sorted(
            (int(record.preference), str(record.exchange).rstrip(".").lower())
            for record in self.records(name, "MX")
        )

    def addresses(self, name: str) -> list[str]:
        """The IPv4 and IPv6 addresses of ``name``."""
        found = [str(record.address) for record in self.records(name, "A")]
        return found + [str(record.address) for record in self.records(name, "AAAA")]

    def ptr(self, address: str) -> list[str]:
        """The names the reverse zone gives ``address``."""
        reverse = dns.reversename.from_address(str(ipaddress.ip_address(address)))
        return [
            str(record.target).rstrip(".").lower() for record in self.records(str(reverse), "PTR")
        ]
