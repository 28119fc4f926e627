"""A stand-in for Amazon SNS on loopback: a signing key, its certificate served over real HTTPS,
and messages signed the way SNS signs them.

The canonical string is built here from AWS's documentation on its own, not with
channels.sns.canonical_string, so a mistake there cannot sign and verify alike.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from pytest_httpserver import HTTPServer

TOPIC_ARN = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_PATH = "/SimpleNotificationService-test.pem"
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ses"


def make_key_and_certificate(common_name: str) -> tuple[rsa.RSAPrivateKey, bytes]:
    """An RSA key and a self-signed certificate for it, valid for 127.0.0.1 and localhost."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


def server_context(
    folder: Path, common_name: str
) -> tuple[ssl.SSLContext, rsa.RSAPrivateKey, Path]:
    """A TLS server context for a new key and its self-signed certificate, both written to
    ``folder`` (cert.pem, key.pem); the key and the certificate's path (a CA bundle)."""
    key, pem = make_key_and_certificate(common_name)
    (folder / "cert.pem").write_bytes(pem)
    (folder / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context, key, folder / "cert.pem"


def string_to_sign(message: dict[str, str]) -> bytes:
    """AWS: for a Notification, Message, MessageId, Subject (if any), Timestamp, TopicArn and
    Type; for the confirmations, Message, MessageId, SubscribeURL, Timestamp, Token, TopicArn
    and Type; each as its name, a newline, its value, a newline."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{n}\n{message[n]}\n" for n in names if n in message).encode()


def sns_timestamp(moment: datetime | None = None) -> str:
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class SnsPeer:
    """The signing side of SNS, and the HTTPS server holding its certificate."""

    key: rsa.RSAPrivateKey
    server: HTTPServer
    ca_bundle: Path

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.server.port}"

    @property
    def cert_url(self) -> str:
        return self.base_url + CERT_PATH

    def sign(
        self,
        message: dict[str, str],
        *,
        version: str = "1",
        key: rsa.RSAPrivateKey | None = None,
        cert_url: str | None = None,
    ) -> dict[str, str]:
        signed = {
            **message,
            "SignatureVersion": version,
            "SigningCertURL": cert_url or self.cert_url,
        }
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 (SNS v1)
        signature = (key or self.key).sign(string_to_sign(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed

    def notification(
        self,
        event: dict[str, Any],
        *,
        message_id: str | None = None,
        topic_arn: str = TOPIC_ARN,
        timestamp: str | None = None,
        subject: str | None = "Amazon SES Email Event Notification",
        version: str = "1",
        **sign_options: Any,
    ) -> dict[str, str]:
        message = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn,
            "Message": json.dumps(event),
            "Timestamp": timestamp or sns_timestamp(),
            "UnsubscribeURL": f"{self.base_url}/?Action=Unsubscribe",
        }
        if subject is not None:
            message["Subject"] = subject
        return self.sign(message, version=version, **sign_options)

    def confirmation(
        self, kind: str = "SubscriptionConfirmation", *, subscribe_url: str | None = None
    ) -> dict[str, str]:
        token = uuid.uuid4().hex
        message = {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": TOPIC_ARN,
            "Message": f"You have chosen to subscribe to the topic {TOPIC_ARN}.",
            "SubscribeURL": subscribe_url
            or f"{self.base_url}/confirm?Action=ConfirmSubscription&Token={token}",
            "Timestamp": sns_timestamp(),
        }
        return self.sign(message)


def ses_event(name: str, **mail: Any) -> dict[str, Any]:
    """A captured SES event from tests/fixtures/ses/, with ``mail`` fields replaced."""
    event: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    event["mail"].update(mail)
    return event


def bounce(
    shape: str, recipients: list[str], bounce_type: str = "Permanent", **mail: Any
) -> dict[str, Any]:
    """An SES bounce for ``recipients``: ``shape`` is "notification" (identity notifications,
    ``notificationType``) or "event" (configuration-set event publishing, ``eventType``)."""
    event = ses_event(f"bounce_{shape}", **mail)
    event["bounce"]["bounceType"] = bounce_type
    if bounce_type != "Permanent":
        event["bounce"]["bounceSubType"] = "MailboxFull" if bounce_type == "Transient" else ""
    template = event["bounce"]["bouncedRecipients"][0]
    event["bounce"]["bouncedRecipients"] = [
        {
            **template,
            "emailAddress": address,
            "diagnosticCode": f"smtp; 550 5.1.1 <{address}>: Recipient address rejected",
        }
        for address in recipients
    ]
    return event


def complaint(shape: str, recipients: list[str], **mail: Any) -> dict[str, Any]:
    event = ses_event(f"complaint_{shape}", **mail)
    event["complaint"]["complainedRecipients"] = [{"emailAddress": a} for a in recipients]
    return event
