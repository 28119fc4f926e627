"""The doctor's peers and a sender set up right: a local DNS server with good records for
example.com (SMTP) and example.org (SES), moto's SES behind a peer that answers GetAccount
(moto 5.2.5 does not implement it), and ``run_doctor`` to run the command as an operator."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import call_command
from moto.server import ThreadedMotoServer
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from channels.configuration import save_channel
from channels.doctor.dkim import SES_DKIM_SUFFIX
from channels.models import Channel
from tests.channels.dns_peer import DnsPeer, Zone
from tests.factories import PublicationFactory

SMTP_IP = "93.184.216.34"
SMTP_PTR = "34.216.184.93.in-addr.arpa"
SES_REGION = "eu-west-1"
#: What AWS's GetAccount answers for a healthy production account (its documented shape).
HEALTHY_ACCOUNT: dict[str, Any] = {
    "DedicatedIpAutoWarmupEnabled": False,
    "EnforcementStatus": "HEALTHY",
    "ProductionAccessEnabled": True,
    "SendQuota": {"Max24HourSend": 200.0, "MaxSendRate": 1.0, "SentLast24Hours": 0.0},
    "SendingEnabled": True,
    "SuppressionAttributes": {"SuppressedReasons": ["BOUNCE", "COMPLAINT"]},
}


def dkim_public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


DKIM_KEY = dkim_public_key()


@pytest.fixture(scope="session")
def dns_peer() -> Iterator[DnsPeer]:
    peer = DnsPeer()
    yield peer
    peer.stop()


@pytest.fixture
def zone(dns_peer: DnsPeer, settings: Any) -> Iterator[Zone]:
    """The DNS peer, emptied, and the doctor pointed at it."""
    dns_peer.zone.clear()
    settings.DOCTOR_NAMESERVERS = [dns_peer.address]
    settings.DOCTOR_DNS_TIMEOUT = 2.0
    settings.DOCTOR_DKIM_SELECTORS = []
    yield dns_peer.zone
    dns_peer.zone.clear()


def publish_good_smtp_domain(zone: Zone) -> None:
    """example.com sent by SMTP through mail.example.com, every record right."""
    zone.set("example.com", "TXT", "v=spf1 a:mail.example.com include:_spf.example.net ~all")
    zone.set("_spf.example.net", "TXT", "v=spf1 ip4:93.184.216.0/24 -all")
    zone.set("example.com", "MX", (10, "mail.example.com"))
    zone.set("mail.example.com", "A", SMTP_IP)
    zone.set(SMTP_PTR, "PTR", "mail.example.com")
    zone.set("default._domainkey.example.com", "TXT", f"v=DKIM1; k=rsa; p={DKIM_KEY}")
    zone.set(
        "_dmarc.example.com",
        "TXT",
        "v=DMARC1; p=reject; np=reject; adkim=s; aspf=r; rua=mailto:dmarc@example.com",
    )


@pytest.fixture
def good_smtp(zone: Zone, settings: Any, db: None) -> Channel:
    """An SMTP channel sending as news@example.com, with every record and setting right."""
    publish_good_smtp_domain(zone)
    settings.SITE_URL = "https://news.example.com"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "news.example.com"]
    settings.DEFAULT_FROM_EMAIL = "Example News <news@example.com>"
    PublicationFactory.create(title="Spring release", status="published")
    channel = Channel(name="smtp", kind="email_smtp", is_default_email=True)
    return save_channel(
        channel,
        {
            "host": "mail.example.com",
            "port": 587,
            "timeout": 30,
            "from_email": "Example News <news@example.com>",
        },
    )


def run_doctor(*args: str) -> tuple[int, str]:
    """``manage.py doctor`` with ``args``: (exit status, what it printed)."""
    out = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("doctor", *args, stdout=out)
    return int(exited.value.code or 0), out.getvalue()


# --- SES ------------------------------------------------------------------------------------


class SesPeer:
    """moto's SES behind pytest-httpserver: GetAccount answered here (``account``), every other
    request forwarded to moto as it came."""

    def __init__(self, server: HTTPServer, moto_url: str) -> None:
        self.server = server
        self.moto_url = moto_url
        self.account: dict[str, Any] = dict(HEALTHY_ACCOUNT)
        server.expect_request("/v2/email/account", method="GET").respond_with_handler(
            lambda request: Response(json.dumps(self.account), content_type="application/json")
        )
        server.expect_request(re.compile("^/.*")).respond_with_handler(self._forward)

    def _forward(self, request: Request) -> Response:
        answer = requests.request(
            request.method,
            self.moto_url + request.full_path.rstrip("?"),
            data=request.get_data(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            timeout=10,
        )
        return Response(
            answer.content,
            status=answer.status_code,
            headers={
                k: v
                for k, v in answer.headers.items()
                if k.lower() not in {"content-length", "connection", "transfer-encoding"}
            },
        )

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name=SES_REGION,
            endpoint_url=self.moto_url,
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key="moto-secret-key-not-real",
        )


@pytest.fixture(scope="session")
def doctor_moto() -> Iterator[str]:
    """moto's server on loopback; yields its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def ses_peer(doctor_moto: str, httpserver: HTTPServer) -> Iterator[SesPeer]:
    requests.post(f"{doctor_moto}/moto-api/reset", timeout=5)
    yield SesPeer(httpserver, doctor_moto)


def publish_good_ses_domain(zone: Zone, tokens: list[str]) -> None:
    """example.org sent by SES: Easy DKIM, a custom MAIL FROM bounce.example.org, DMARC."""
    for token in tokens:
        zone.set(f"{token}._domainkey.example.org", "CNAME", f"{token}.{SES_DKIM_SUFFIX}")
    zone.set("bounce.example.org", "MX", (10, f"feedback-smtp.{SES_REGION}.amazonses.com"))
    zone.set("bounce.example.org", "TXT", "v=spf1 include:amazonses.com ~all")
    zone.set("amazonses.com", "TXT", "v=spf1 ip4:54.240.0.0/18 ip4:199.255.192.0/22 ~all")
    zone.set("_dmarc.example.org", "TXT", "v=DMARC1; p=quarantine; rua=mailto:d@example.org")


@pytest.fixture
def good_ses(zone: Zone, ses_peer: SesPeer, settings: Any, db: None) -> Channel:
    """An SES channel sending as news@example.org, with every record and setting right."""
    ses_peer.client("sesv2").create_email_identity(EmailIdentity="example.org")
    v1 = ses_peer.client("ses")
    v1.set_identity_mail_from_domain(Identity="example.org", MailFromDomain="bounce.example.org")
    tokens = v1.get_identity_dkim_attributes(Identities=["example.org"])["DkimAttributes"][
        "example.org"
    ]["DkimTokens"]
    publish_good_ses_domain(zone, tokens)
    settings.SITE_URL = "https://news.example.org"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "news.example.org"]
    settings.DEFAULT_FROM_EMAIL = "news@example.org"
    PublicationFactory.create(title="Spring release", status="published")
    channel = Channel(
        name="ses", kind="email_ses", is_default_email=True, rate_limit_per_second=1.0
    )
    return save_channel(
        channel,
        {
            "from_email": "Example News <news@example.org>",
            "region": SES_REGION,
            "endpoint_url": ses_peer.url,
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "moto-secret-key-not-real",
        },
    )
