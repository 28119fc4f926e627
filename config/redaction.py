"""Redacting personal data and secrets from text bound for logs and error columns.

``redact`` is used by the logging filter (every log line, exception text included) and by the
delivery engine before it stores a provider's error message.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"\b([A-Za-z0-9])[A-Za-z0-9._%+'-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)\b")
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization headers and bearer credentials.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), r"\1 [redacted]"),
    # Standard Webhooks secrets and signatures.
    (re.compile(r"\bwhsec_[A-Za-z0-9+/=]+"), "whsec_[redacted]"),
    (re.compile(r"\bv1,[A-Za-z0-9+/=]{20,}"), "v1,[redacted]"),
    # Our API keys: a visible prefix, then the secret part.
    (re.compile(r"\b(pk_[a-z0-9]{8})_[A-Za-z0-9_-]{16,}"), r"\1_[redacted]"),
    # Slack tokens and incoming webhook URLs, Discord webhook URLs.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+"), "xox-[redacted]"),
    (re.compile(r"(hooks\.slack\.com/services/)[A-Za-z0-9/_-]+"), r"\1[redacted]"),
    (re.compile(r"(/api/webhooks/\d+/)[A-Za-z0-9_-]+"), r"\1[redacted]"),
    # AWS access key ids.
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), "[aws-key-redacted]"),
    # The subscribers' link tokens, whatever their shape, in any URL or request line
    # (access logs, Referer, "Bad Request: /preferences/..."): they are credentials that never
    # expire (docs/decisions/0072-an-unsubscribe-only-token.md).
    (
        re.compile(r"(/(?:confirm|preferences|unsubscribe)/)[^/\s?#\"']+"),
        r"\1[token]",
    ),
    # Django signed values (signing.dumps / TimestampSigner): payload:timestamp:signature.
    (
        re.compile(r"\b[A-Za-z0-9_-]{8,}(?::[A-Za-z0-9_-]{4,}){1,2}:[A-Za-z0-9_-]{20,}\b"),
        "[token]",
    ),
    # name=value and "name": "value" pairs whose name says they are secret.
    (
        re.compile(
            r"(?i)\b([\w-]*(?:token|secret|password|passwd|api[_-]?key|signature|credential)s?)"
            r"(\"?'?\s*[:=]\s*\"?'?)([^\s\"'&,;}]+)"
        ),
        r"\1\2[redacted]",
    ),
)


def redact_email(match: re.Match[str]) -> str:
    return f"{match.group(1)}***@{match.group(2)}"


def redact(text: str) -> str:
    """Return ``text`` with email addresses masked (j***@example.com) and secrets removed."""
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return _EMAIL.sub(redact_email, text)
