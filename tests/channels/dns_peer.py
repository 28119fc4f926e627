"""A local authoritative DNS server for the doctor's tests: dnslib's server on loopback (UDP
and TCP, one port), answering from records a test sets and changes as it goes.

``zone.set("example.com", "TXT", "v=spf1 -all")`` replaces that name's records of that type;
``zone.remove(...)`` drops them. A name with no records at all answers NXDOMAIN; a name with
records of other types answers NOERROR with no answer (NODATA), as a real server does. A CNAME
is followed within the zone, as a recursive resolver would for the doctor.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

TTL = 60


def _rdata(rtype: str, value: Any) -> Any:
    if rtype == "TXT":
        data = value.encode()
        return TXT([data[i : i + 255] for i in range(0, len(data), 255)] or [b""])
    if rtype == "MX":
        preference, host = value
        return MX(host, preference)
    return {"A": A, "AAAA": AAAA, "CNAME": CNAME, "PTR": PTR}[rtype](value)


class Zone(BaseResolver):
    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[Any]] = {}
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def set(self, name: str, rtype: str, *values: Any) -> None:
        with self._lock:
            self.records[(name.lower().rstrip("."), rtype)] = list(values)

    def remove(self, name: str, rtype: str) -> None:
        with self._lock:
            self.records.pop((name.lower().rstrip("."), rtype), None)

    def clear(self) -> None:
        with self._lock:
            self.records.clear()
            self.queries.clear()

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).lower().rstrip(".")
        rtype = QTYPE[request.q.qtype]
        with self._lock:
            self.queries.append((name, rtype))
            for _hop in range(8):
                cname = self.records.get((name, "CNAME"))
                if cname and rtype != "CNAME":
                    reply.add_answer(RR(name + ".", QTYPE.CNAME, rdata=CNAME(cname[0]), ttl=TTL))
                    name = cname[0].lower().rstrip(".")
                    continue
                break
            for value in self.records.get((name, rtype), []):
                reply.add_answer(
                    RR(name + ".", getattr(QTYPE, rtype), rdata=_rdata(rtype, value), ttl=TTL)
                )
            exists = any(key[0] == name for key in self.records)
        if not reply.rr and not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class DnsPeer:
    """UDP and TCP servers on one loopback port, serving ``zone``."""

    def __init__(self) -> None:
        self.zone = Zone()
        quiet = DNSLogger("-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self.port = self._free_port()
        self.servers = [
            DNSServer(self.zone, address="127.0.0.1", port=self.port, tcp=tcp, logger=quiet)
            for tcp in (False, True)
        ]
        for server in self.servers:
            server.start_thread()

    @staticmethod
    def _free_port() -> int:
        # A port free for both UDP and TCP.
        for _attempt in range(20):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.bind(("127.0.0.1", 0))
                port = int(udp.getsockname()[1])
                with socket.socket() as tcp:
                    try:
                        tcp.bind(("127.0.0.1", port))
                    except OSError:
                        continue
                return port
        raise RuntimeError("no free port for the DNS peer")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
