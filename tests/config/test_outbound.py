"""The outbound-URL guard (config.outbound, decision 0071): which addresses a channel's URL may
reach, checked on names as well as literals, and a requests session that connects to the
address it checked, talking to a real local peer."""

from __future__ import annotations

import ipaddress
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from http.server import HTTPServer as HTTPServer_
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import override_settings
from pytest_httpserver import HTTPServer

from config.outbound import (
    CheckedTarget,
    OutboundAddressError,
    UnresolvedHostError,
    check_url,
    connections_limited_to,
    pinned_session,
    refusal,
)
from tests.conftest import PUBLIC_ADDRESS, REBINDING_HOST

REFUSED = [
    ("127.0.0.1", "a loopback address"),
    ("10.0.0.1", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("169.254.1.1", "a link-local address"),
    ("0.0.0.0", "an unspecified address"),  # noqa: S104 (the address under test)
    ("100.64.0.1", "not a globally routable address"),
    ("224.0.0.1", "a multicast address"),
    ("240.0.0.1", "a private address"),  # reserved, which Python counts as private
    ("::1", "a loopback address"),
    ("fe80::1", "a link-local address"),
    ("fc00::1", "a private address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("ff02::1", "a multicast address"),
    ("::ffff:127.0.0.1", "a loopback address in IPv6 form"),
    ("::ffff:10.0.0.1", "a private address in IPv6 form"),
    ("2002:a00:1::", "a private address in IPv6 form"),  # 6to4 around 10.0.0.1
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a private address in IPv6 form"),  # Teredo
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_it_refuses_every_address_that_is_not_public(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_a_url_at_a_refused_address_is_refused_naming_the_field_and_the_reason(
    address: str, reason: str
) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(OutboundAddressError) as raised:
        check_url(f"http://{host}:8080/hook", field="webhook_url", allowed=())
    assert raised.value.field == "webhook_url"
    assert raised.value.status == 400
    assert reason in raised.value.message
    assert "outbound requests go to public addresses only" in raised.value.message


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
def test_a_public_address_is_accepted_without_any_network_access(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    target = check_url(f"https://{host}/hook", allowed=())
    assert target.addresses == (address,)
    assert target.port == 443
    assert refusal(ipaddress.ip_address(address)) is None


def test_a_name_resolving_to_a_private_address_is_refused() -> None:
    # "localhost" resolves on every machine, to loopback addresses only.
    with pytest.raises(OutboundAddressError, match=r"localhost \(.*\) is a loopback address"):
        check_url("http://localhost:9/", allowed=())


@pytest.mark.parametrize(
    "url", ["ftp://93.184.216.34/", "file:///etc/passwd", "gopher://93.184.216.34/", "http:///x"]
)
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(OutboundAddressError):
        check_url(url, allowed=())


def test_a_host_that_does_not_resolve_is_told_apart() -> None:
    with pytest.raises(UnresolvedHostError):
        check_url("https://no-such-host.invalid/", allowed=())


def test_the_allowed_setting_lets_named_local_hosts_through() -> None:
    with override_settings(OUTBOUND_ALLOWED_HOSTS=["localhost"]):
        assert check_url("http://localhost:9/").host == "localhost"
        with pytest.raises(OutboundAddressError):
            check_url("http://127.0.0.2:9/")
    with override_settings(OUTBOUND_ALLOWED_HOSTS=[]), pytest.raises(OutboundAddressError):
        check_url("http://localhost:9/")


def test_the_host_header_keeps_the_name_and_a_port_that_is_not_the_default() -> None:
    target = CheckedTarget("x", "https", "hooks.example.com", 8443, ("93.184.216.34",))
    assert target.host_header == "hooks.example.com:8443"
    assert CheckedTarget("x", "http", "::1", 80, ("::1",)).host_header == "[::1]"


def test_the_pinned_session_connects_to_the_checked_address_with_the_url_host(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    session = pinned_session()
    with override_settings(OUTBOUND_ALLOWED_HOSTS=["localhost"]):
        target = check_url(f"http://localhost:{httpserver.port}/hook")
        response = session.get(f"http://localhost:{httpserver.port}/hook", timeout=5)
    assert response.status_code == 200
    # The connection pool is the checked address's, not the name's: no second lookup.
    pools = session.get_adapter("http://localhost/").poolmanager.pools.keys()
    assert {key.key_host for key in pools} == {target.address}
    [(request, _)] = httpserver.log
    assert request.headers["Host"] == f"localhost:{httpserver.port}"


def test_the_pinned_session_refuses_before_connecting_when_the_host_is_no_longer_allowed(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    session = pinned_session(field="url")
    with (
        override_settings(OUTBOUND_ALLOWED_HOSTS=[]),
        pytest.raises(OutboundAddressError) as raised,
    ):
        session.post(httpserver.url_for("/hook"), data=b"{}", timeout=5)
    assert raised.value.field == "url"
    assert httpserver.log == []


def test_the_pinned_session_checks_every_redirect_hop(httpserver: HTTPServer) -> None:
    # An allowed public-looking first hop may not bounce the request to a private address.
    httpserver.expect_request("/hop").respond_with_data(
        "", status=302, headers={"Location": "http://10.0.0.1/latest/meta-data/"}
    )
    with (
        override_settings(OUTBOUND_ALLOWED_HOSTS=["127.0.0.1"]),
        pytest.raises(OutboundAddressError, match=r"10\.0\.0\.1 is a private address"),
    ):
        pinned_session().get(httpserver.url_for("/hop"), timeout=5)


def _self_signed(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A certificate for ``name`` signed by itself (so it is also its CA), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def _tls_peer(cert: Path, key: Path) -> Iterator[tuple[int, list[str | None]]]:
    """A local HTTPS server answering 200; yields its port and the SNI names it was sent."""
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def record(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        names.append(name)

    context.sni_callback = record

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = HTTPServer_(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], names
    finally:
        server.shutdown()
        server.server_close()


def test_over_tls_the_pinned_session_sends_the_name_and_verifies_the_certificate_for_it(
    tmp_path: Path,
) -> None:
    cert, key = _self_signed(tmp_path, "localhost")
    session = pinned_session()
    with (
        _tls_peer(cert, key) as (port, names),
        override_settings(OUTBOUND_ALLOWED_HOSTS=["localhost"]),
    ):
        target = check_url(f"https://localhost:{port}/")
        response = session.get(f"https://localhost:{port}/", verify=str(cert), timeout=5)
    assert response.status_code == 200
    assert names == ["localhost"]
    pools = session.get_adapter("https://localhost/").poolmanager.pools.keys()
    assert {key.key_host for key in pools} == {target.address}


def test_over_tls_a_certificate_for_another_name_is_refused(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, "other.example")
    with (
        _tls_peer(cert, key) as (port, _),
        override_settings(OUTBOUND_ALLOWED_HOSTS=["localhost"]),
        pytest.raises(requests.exceptions.SSLError),
    ):
        pinned_session().get(f"https://localhost:{port}/", verify=str(cert), timeout=5)


def test_a_socket_limited_to_a_target_reaches_its_checked_address(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/hook").respond_with_data("ok")
    url = httpserver.url_for("/hook")
    with override_settings(OUTBOUND_ALLOWED_HOSTS=["127.0.0.1"]):
        target = check_url(url)
    with connections_limited_to(target):
        assert requests.get(url, timeout=5).text == "ok"


def test_a_socket_limited_to_a_target_cannot_follow_a_dns_change(
    httpserver: HTTPServer, rebinding_dns: list[str]
) -> None:
    # The check sees a public address; the client's own lookup then answers 127.0.0.1.
    httpserver.expect_request("/hook").respond_with_data("ok")
    url = f"http://{REBINDING_HOST}:{httpserver.port}/hook"
    with override_settings(OUTBOUND_ALLOWED_HOSTS=[]):
        target = check_url(url, field="webhook_url")
    assert target.addresses == (PUBLIC_ADDRESS,)
    with (
        connections_limited_to(target, field="webhook_url"),
        pytest.raises(OutboundAddressError, match=r"now leads to 127\.0\.0\.1") as raised,
    ):
        requests.get(url, timeout=5)
    assert raised.value.field == "webhook_url"
    assert rebinding_dns == [PUBLIC_ADDRESS, "127.0.0.1"]
    assert httpserver.log == []
    # Outside the block the same socket calls are not limited.
    assert requests.get(httpserver.url_for("/hook"), timeout=5).text == "ok"
