"""``manage.py doctor`` against a local authoritative DNS server: a sender set up right passes
with exit status 0; each broken record or setting gives its finding, the fix, and a non-zero
exit status (1 for warnings, 2 for failures)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from channels.doctor.findings import Level
from channels.models import Channel
from tests.channels.dns_peer import Zone
from tests.channels.doctor_support import (
    SMTP_PTR,
    dns_peer,
    good_smtp,
    run_doctor,
    zone,
)

__all__ = ["dns_peer", "good_smtp", "zone"]  # fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def findings(output: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(output)["findings"]
    return data


def test_a_sender_set_up_right_gets_only_ok_findings_and_exit_status_0(good_smtp: Channel) -> None:
    status, output = run_doctor("--json")

    report = json.loads(output)
    assert [f for f in report["findings"] if f["level"] != "ok"] == []
    assert status == 0
    assert report["status"] == "ok"
    checks = {(f["check"], f["subject"]) for f in report["findings"]}
    assert {
        ("spf", "example.com"),
        ("mx", "example.com"),
        ("dkim", "example.com"),
        ("dmarc", "example.com"),
        ("ptr", "SMTP host mail.example.com"),
        ("site_url", "SITE_URL"),
        ("list_unsubscribe", "bulk email"),
        ("rates", "last 7 days"),
    } <= checks


def test_the_text_output_names_each_finding_and_its_fix(good_smtp: Channel, zone: Zone) -> None:
    zone.remove("example.com", "TXT")

    status, output = run_doctor()

    assert status == 2
    assert "FAIL spf" in output
    assert 'fix: Publish TXT example.com "v=spf1 a:mail.example.com mx ~all"' in output
    assert "OK   dmarc" in output


Breakage = Callable[[Zone, Any], None]


def _txt(name: str, *values: str) -> Breakage:
    return lambda zone, settings: zone.set(name, "TXT", *values)


def _remove(name: str, rtype: str) -> Breakage:
    return lambda zone, settings: zone.remove(name, rtype)


def _too_many_lookups(zone: Zone, settings: Any) -> None:
    includes = " ".join(f"include:spf{n}.example.net" for n in range(6))
    zone.set("example.com", "TXT", f"v=spf1 {includes} ~all")
    for n in range(6):
        zone.set(f"spf{n}.example.net", "TXT", f"v=spf1 a mx ip4:192.0.2.{n}/32 -all")


def _ptr_mismatch(zone: Zone, settings: Any) -> None:
    zone.set(SMTP_PTR, "PTR", "host-34.hosting.example.net")
    zone.set("host-34.hosting.example.net", "A", "93.184.216.99")


BROKEN: dict[str, tuple[Breakage, str, Level, str]] = {
    # name: (what breaks, check, level, text the fix or message must hold)
    "no SPF": (
        _remove("example.com", "TXT"),
        "spf",
        Level.FAILURE,
        'Publish TXT example.com "v=spf1',
    ),
    "two SPF records": (
        _txt(
            "example.com", "v=spf1 a:mail.example.com ~all", "v=spf1 include:_spf.example.net -all"
        ),
        "spf",
        Level.FAILURE,
        'Replace them with one: TXT example.com "v=spf1 a:mail.example.com '
        'include:_spf.example.net ~all"',
    ),
    "SPF over 10 lookups": (_too_many_lookups, "spf", Level.FAILURE, "ip4:/ip6: ranges"),
    "SPF ending ?all": (
        _txt("example.com", "v=spf1 a:mail.example.com ?all"),
        "spf",
        Level.WARNING,
        'Publish TXT example.com "v=spf1 a:mail.example.com ~all"',
    ),
    "no DKIM key": (
        _remove("default._domainkey.example.com", "TXT"),
        "dkim",
        Level.FAILURE,
        "DOCTOR_DKIM_SELECTORS=<selector>",
    ),
    "DMARC missing": (
        _remove("_dmarc.example.com", "TXT"),
        "dmarc",
        Level.FAILURE,
        'Publish TXT _dmarc.example.com "v=DMARC1; p=none; rua=mailto:dmarc-reports@example.com"',
    ),
    "DMARC p=none": (
        _txt("_dmarc.example.com", "v=DMARC1; p=none; rua=mailto:dmarc@example.com"),
        "dmarc",
        Level.WARNING,
        'TXT _dmarc.example.com "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.com"',
    ),
    "DMARC with pct": (
        _txt("_dmarc.example.com", "v=DMARC1; p=reject; pct=50; rua=mailto:dmarc@example.com"),
        "dmarc",
        Level.WARNING,
        'Publish TXT _dmarc.example.com "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"',
    ),
    "DMARC psd=y": (
        _txt("_dmarc.example.com", "v=DMARC1; p=reject; psd=y; rua=mailto:dmarc@example.com"),
        "dmarc",
        Level.FAILURE,
        'Publish TXT _dmarc.example.com "v=DMARC1; p=reject; rua=mailto:dmarc@example.com"',
    ),
    "SPF +all": (
        _txt("example.com", "v=spf1 a:mail.example.com +all"),
        "spf",
        Level.FAILURE,
        'Publish TXT example.com "v=spf1 a:mail.example.com ~all"',
    ),
    "SPF include without a record": (
        _txt("example.com", "v=spf1 include:gone.example.net ~all"),
        "spf",
        Level.FAILURE,
        "include:gone.example.net has 0 SPF records (exactly one needed)",
    ),
    "DKIM key revoked": (
        _txt("default._domainkey.example.com", "v=DKIM1; k=rsa; p="),
        "dkim",
        Level.FAILURE,
        "No DKIM key found for example.com",
    ),
    "two DMARC records": (
        _txt("_dmarc.example.com", "v=DMARC1; p=reject", "v=DMARC1; p=none"),
        "dmarc",
        Level.FAILURE,
        "Keep one TXT record at _dmarc.example.com.",
    ),
    "DMARC t=y": (
        _txt("_dmarc.example.com", "v=DMARC1; p=reject; t=y; rua=mailto:dmarc@example.com"),
        "dmarc",
        Level.WARNING,
        'When the trial is over, publish TXT _dmarc.example.com "v=DMARC1; p=reject; '
        'rua=mailto:dmarc@example.com"',
    ),
    "DMARC without rua": (
        _txt("_dmarc.example.com", "v=DMARC1; p=reject"),
        "dmarc",
        Level.WARNING,
        'Publish TXT _dmarc.example.com "v=DMARC1; p=reject; rua=mailto:dmarc-reports@example.com"',
    ),
    "SMTP host on a private address": (
        lambda zone, settings: zone.set("mail.example.com", "A", "10.0.0.5"),
        "ptr",
        Level.WARNING,
        "Check the PTR of the relay's public sending address with your provider.",
    ),
    "no MX": (_remove("example.com", "MX"), "mx", Level.FAILURE, "Publish MX example.com 10"),
    "null MX": (
        lambda zone, settings: zone.set("example.com", "MX", (0, ".")),
        "mx",
        Level.FAILURE,
        "Replace it: MX example.com 10",
    ),
    "PTR mismatch": (
        _ptr_mismatch,
        "ptr",
        Level.FAILURE,
        "set its PTR to mail.example.com, a name that resolves to 93.184.216.34",
    ),
    "no PTR": (_remove(SMTP_PTR, "PTR"), "ptr", Level.FAILURE, "set its PTR to mail.example.com"),
    "http SITE_URL": (
        lambda zone, settings: setattr(settings, "SITE_URL", "http://news.example.com"),
        "site_url",
        Level.FAILURE,
        "SITE_URL=https://news.example.com",
    ),
    "one-click host not allowed": (
        lambda zone, settings: setattr(settings, "ALLOWED_HOSTS", ["testserver"]),
        "one_click",
        Level.FAILURE,
        "Add news.example.com to ALLOWED_HOSTS.",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_each_broken_record_gets_its_finding_its_fix_and_a_non_zero_exit(
    case: str, good_smtp: Channel, zone: Zone, settings: Any
) -> None:
    breakage, check, level, fix = BROKEN[case]
    breakage(zone, settings)

    status, output = run_doctor("--json")

    found = [f for f in findings(output) if f["check"] == check and f["level"] == level.value]
    assert found, findings(output)
    assert any(fix in f["fix"] or fix in f["message"] for f in found), found
    assert status == level.exit_code
    assert status != 0


def test_pct_is_reported_as_gone_in_dmarcbis(good_smtp: Channel, zone: Zone) -> None:
    zone.set("_dmarc.example.com", "TXT", "v=DMARC1; p=reject; pct=50; rua=mailto:d@example.com")

    _status, output = run_doctor("--json")

    (finding,) = [f for f in findings(output) if f["check"] == "dmarc"]
    assert "removed by DMARCbis (pct is gone; t=y is its replacement)" in finding["message"]
    assert "only 50% of failing mail" in finding["message"]
    assert finding["source"].startswith("RFC 9989")


def test_no_suggested_record_keeps_a_tag_dmarcbis_removed(good_smtp: Channel, zone: Zone) -> None:
    zone.set("_dmarc.example.com", "TXT", "v=DMARC1; p=none; pct=50; rua=mailto:d@example.com")

    _status, output = run_doctor("--json")

    fixes = [f["fix"] for f in findings(output) if f["check"] == "dmarc"]
    assert len(fixes) == 2 and all(fixes)
    assert any("p=quarantine" in fix for fix in fixes)
    assert not any("pct" in fix for fix in fixes)


def test_a_missing_list_unsubscribe_post_header_is_a_failure(
    good_smtp: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A regression in the headers every bulk message gets (or a template that drops them).
    from subscribers import tokens

    original = tokens.list_unsubscribe_headers
    monkeypatch.setattr(
        tokens,
        "list_unsubscribe_headers",
        lambda token: {"List-Unsubscribe": original(token)["List-Unsubscribe"]},
    )

    status, output = run_doctor("--json")

    (finding,) = [f for f in findings(output) if f["check"] == "list_unsubscribe"]
    assert finding["level"] == "failure"
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in finding["fix"]
    assert status == 2


def test_the_doctor_unsubscribes_nobody_and_stores_nothing(good_smtp: Channel) -> None:
    from channels.models import Delivery, TrackedLink
    from subscribers.models import ConsentEvent
    from tests.factories import SubscriberFactory

    Channel.objects.filter(pk=good_smtp.pk).update(tracking=True)
    subscriber = SubscriberFactory.create(status="active")
    consent = ConsentEvent.objects.count()

    status, _output = run_doctor()

    assert status == 0
    subscriber.refresh_from_db()
    assert subscriber.status == "active"
    assert ConsentEvent.objects.count() == consent
    assert Delivery.objects.count() == 0
    assert TrackedLink.objects.count() == 0


def test_without_a_publication_the_headers_cannot_be_checked(
    good_smtp: Channel, zone: Zone
) -> None:
    from publishing.models import Publication

    Publication.objects.all().delete()
    Publication.history.all().delete()  # deleting wrote a last version of each

    status, output = run_doctor("--json")

    (finding,) = [f for f in findings(output) if f["check"] == "list_unsubscribe"]
    assert finding["level"] == "warning"
    assert "a draft is enough" in finding["fix"]
    assert status == 1


def test_configured_dkim_selectors_are_required(
    good_smtp: Channel, zone: Zone, settings: Any
) -> None:
    settings.DOCTOR_DKIM_SELECTORS = ["default", "s2026"]

    status, output = run_doctor("--json")

    (finding,) = [f for f in findings(output) if f["check"] == "dkim"]
    assert finding["level"] == "failure"
    assert (
        "DKIM selector s2026: no key published at s2026._domainkey.example.com"
        in (finding["message"])
    )
    assert status == 2


def test_an_unreachable_name_server_is_a_warning_not_a_missing_record(
    good_smtp: Channel, settings: Any
) -> None:
    from tests.channels.backends.conftest import free_port

    settings.DOCTOR_NAMESERVERS = [f"127.0.0.1:{free_port()}"]
    settings.DOCTOR_DNS_TIMEOUT = 0.3

    status, output = run_doctor("--json")

    dns = [f for f in findings(output) if f["check"] in {"spf", "dmarc", "mx"}]
    assert dns and all(f["level"] == "warning" for f in dns)
    assert all("Could not read" in f["message"] for f in dns)
    assert status == 1
