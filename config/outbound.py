"""The outbound-URL guard: requests the site makes on a user's behalf go to public addresses only.

A channel's URL (a webhook endpoint, a Slack or Discord webhook, Slack's API base URL) is chosen
by whoever holds ``channels:admin`` or ``webhooks:admin``; without this guard the web process
would POST to 127.0.0.1, the private network or the cloud's metadata service for them (SSRF,
decision 0071). ``check_url`` parses the URL (http and https only), resolves its host once and
refuses it when any address it resolves to is not globally routable: loopback, private,
link-local, multicast, reserved, unspecified, shared, cloud metadata, and those hidden in IPv6
(IPv4-mapped, 6to4, Teredo). It is called when a URL is saved (the backends' config forms) and
again when a request leaves (``PinnedAdapter`` for requests, which then connects to the very
address it checked, so a DNS change between the check and the connection cannot slip past).
Clients that open their own connections (slack-sdk's urllib, the SNS certificate fetch) run
inside ``connections_limited_to``: an audit hook on ``socket.connect`` lets their sockets reach
the checked addresses only, whatever the name resolves to by then.

``OUTBOUND_ALLOWED_HOSTS`` names hosts (or addresses) that are let through anyway, for
development and tests; production refuses to start with it set (config.env). This module is
part of the config toolkit: it imports no app.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool

from config.errors import ProjectError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6; Alibaba; Azure's
#: wire server and Oracle's): named on their own, as some of them are public addresses.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16")
)
DEFAULT_PORTS = {"http": 80, "https": 443}


class OutboundAddressError(ProjectError):
    """A URL the site must not send requests to (SSRF guard, decision 0071).

    Status 400 with the field to blame: the API answers it as a validation problem.
    """

    code = "outbound_address_refused"
    status = 400


class UnresolvedHostError(OutboundAddressError):
    """The URL's host did not resolve (now): nothing can be said of its addresses.

    When a URL is saved this is let through (the check runs again when a request leaves, and
    a name may resolve only where the workers run); when a request leaves it is a passing
    failure, as any DNS failure.
    """

    code = "outbound_host_unresolved"


@dataclass(frozen=True)
class CheckedTarget:
    """A URL whose host resolved to acceptable addresses only.

    ``address`` is the one to connect to (the first of ``addresses``, all of which were
    checked); ``host`` is the URL's host, which the Host header, TLS SNI and certificate
    verification keep using.
    """

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` is no place for an outbound request, or None when it is public.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, 6to4, Teredo's client) are judged by
    the address they carry as well: ``::ffff:127.0.0.1`` reaches the loopback interface.
    """
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour]
        if address.teredo is not None:
            embedded.append(address.teredo[1])
        for inner in embedded:
            if inner is not None and (reason := refusal(inner)) is not None:
                return f"{reason} in IPv6 form"
    if address.is_private:
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "not a globally routable address"
    return None


def allowed_hosts() -> frozenset[str]:
    """``OUTBOUND_ALLOWED_HOSTS``, lower-cased: names and addresses let through anyway."""
    return frozenset(
        host.strip().lower().strip("[]")
        for host in getattr(settings, "OUTBOUND_ALLOWED_HOSTS", ())
        if host.strip()
    )


def check_url(
    url: str, *, field: str = "url", allowed: Iterable[str] | None = None
) -> CheckedTarget:
    """Parse ``url``, resolve its host once and return where to connect.

    Raises OutboundAddressError naming ``field`` when the URL is not http(s), its host does
    not resolve (UnresolvedHostError), or any address it resolves to is refused by
    ``refusal`` (unless the host or that address is in ``allowed``, by default
    ``OUTBOUND_ALLOWED_HOSTS``). A name resolving
    to several addresses is refused when one of them is: the connection could go to any.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundAddressError("This is not a valid URL.", field=field) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise OutboundAddressError("Only http and https URLs are accepted.", field=field)
    host = (parts.hostname or "").lower()
    if not host:
        raise OutboundAddressError("The URL has no host.", field=field)
    port = port or DEFAULT_PORTS[scheme]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise UnresolvedHostError(f"The host {host} does not resolve.", field=field) from None
    # Scope ids (fe80::1%eth0) are dropped: the address alone says where it goes.
    addresses = tuple(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise UnresolvedHostError(f"The host {host} does not resolve.", field=field)
    let_through = allowed_hosts() if allowed is None else frozenset(allowed)
    if host not in let_through:
        for text in addresses:
            if text in let_through:
                continue
            reason = refusal(ipaddress.ip_address(text))
            if reason is not None:
                shown = host if host == text else f"{host} ({text})"
                raise OutboundAddressError(
                    f"{shown} is {reason}; outbound requests go to public addresses only.",
                    field=field,
                )
    return CheckedTarget(url=url, scheme=scheme, host=host, port=port, addresses=addresses)


class PinnedAdapter(HTTPAdapter):
    """A requests transport that checks every URL when the request leaves and connects to the
    address it checked.

    The connection pool is keyed by that address; the Host header, TLS SNI and certificate
    verification keep the URL's host. Redirects go through ``send`` too, so each hop is
    checked. Proxies are never used (a proxy would resolve the name again). Raises
    OutboundAddressError (not a requests error) before anything is sent when a URL is refused.
    """

    def __init__(self, *, field: str = "url", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.field = field
        # requests calls get_connection_with_tls_context from send, on the same thread.
        self._local = threading.local()

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        target = check_url(request.url or "", field=self.field)
        request.headers["Host"] = target.host_header
        self._local.target = target
        try:
            return super().send(request, stream, timeout, verify, cert, proxies={})
        finally:
            self._local.target = None

    def get_connection_with_tls_context(
        self,
        request: PreparedRequest,
        verify: bool | str | None,
        proxies: Mapping[str, str] | None = None,
        cert: tuple[str, str] | str | None = None,
    ) -> HTTPConnectionPool:
        target: CheckedTarget | None = getattr(self._local, "target", None)
        if target is None:
            raise OutboundAddressError("The request was not checked.", field=self.field)
        checked_verify: bool | str = True if verify is None else verify
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(
            request, checked_verify, cert
        )
        host_params = {**host_params, "host": target.address}
        # The pool connects to the checked address; TLS still names and verifies the host.
        tls: dict[str, Any] = dict(pool_kwargs)
        if target.scheme == "https":
            tls.update(server_hostname=target.host, assert_hostname=target.host)
        pool: HTTPConnectionPool = self.poolmanager.connection_from_host(
            **host_params, pool_kwargs=tls
        )
        return pool


def pinned_session(*, field: str = "url") -> requests.Session:
    """A requests Session whose http and https requests go through ``PinnedAdapter``, with
    the environment's proxy variables ignored."""
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedAdapter(field=field)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


#: The target (and the field to blame) that sockets opened in this context may reach.
_LIMITED_TO: ContextVar[tuple[CheckedTarget, str] | None] = ContextVar(
    "outbound_limited_to", default=None
)
_HOOK_LOCK = threading.Lock()
_hook_installed = False


def _audit_connect(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook: inside ``connections_limited_to``, a socket may connect only to one of
    the checked addresses. Raising here aborts the connect before a packet leaves."""
    if event != "socket.connect":
        return
    limit = _LIMITED_TO.get()
    if limit is None:
        return
    target, field = limit
    address = args[1]
    host = str(address[0]).split("%")[0] if isinstance(address, tuple) and address else ""
    if host not in target.addresses:
        shown = host or repr(address)
        raise OutboundAddressError(
            f"{target.host} now leads to {shown}, not to the address that was "
            "checked; outbound requests go to checked public addresses only.",
            field=field,
        )


def _install_hook() -> None:
    """Add the audit hook once per process (audit hooks cannot be removed; outside
    ``connections_limited_to`` it returns at once)."""
    global _hook_installed
    with _HOOK_LOCK:
        if not _hook_installed:
            sys.addaudithook(_audit_connect)
            _hook_installed = True


@contextmanager
def connections_limited_to(target: CheckedTarget, *, field: str = "url") -> Iterator[None]:
    """Within this block, every socket this thread (or task) connects must go to one of
    ``target``'s checked addresses, else OutboundAddressError is raised from the connect.

    For clients that resolve the name again themselves (slack-sdk over urllib, ``requests.get``)
    and so cannot be handed the checked address: a DNS answer that changed since ``check_url``,
    or a redirect to another host, is refused when the connection is attempted.
    """
    _install_hook()
    token = _LIMITED_TO.set((target, field))
    try:
        yield
    finally:
        _LIMITED_TO.reset(token)
