"""The doctor with an SES channel: moto's SES (DKIM tokens, MAIL FROM, quota) behind a peer
answering GetAccount, and the local DNS server; plus the bounce and complaint rates read from
seeded deliveries."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from channels.models import Channel, Delivery, SesFeedback
from tests.channels.dns_peer import Zone
from tests.channels.doctor_support import (
    SES_REGION,
    SesPeer,
    dns_peer,
    doctor_moto,
    good_ses,
    good_smtp,
    run_doctor,
    ses_peer,
    zone,
)
from tests.factories import DispatchFactory

__all__ = ["dns_peer", "doctor_moto", "good_ses", "good_smtp", "ses_peer", "zone"]  # fixtures

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def findings(output: str, check: str) -> list[dict[str, Any]]:
    return [f for f in json.loads(output)["findings"] if f["check"] == check]


def test_an_ses_sender_set_up_right_gets_only_ok_findings(good_ses: Channel) -> None:
    status, output = run_doctor("--json")

    report = json.loads(output)
    assert [f for f in report["findings"] if f["level"] != "ok"] == []
    assert status == 0
    subjects = {(f["check"], f["subject"]) for f in report["findings"]}
    assert {
        ("spf", "bounce.example.org"),
        ("mx", "bounce.example.org"),
        ("dkim", "example.org"),
        ("dmarc", "example.org"),
        ("ses", "channel ses"),
    } <= subjects
    (dkim,) = findings(output, "dkim")
    assert "The 3 Easy DKIM CNAMEs of SES are published" in dkim["message"]


def test_a_missing_easy_dkim_cname_names_the_record_to_publish(
    good_ses: Channel, ses_peer: SesPeer, zone: Zone
) -> None:
    token = ses_peer.client("ses").get_identity_dkim_attributes(Identities=["example.org"])[
        "DkimAttributes"
    ]["example.org"]["DkimTokens"][0]
    zone.remove(f"{token}._domainkey.example.org", "CNAME")

    status, output = run_doctor("--json")

    (dkim,) = findings(output, "dkim")
    assert dkim["level"] == "failure"
    assert dkim["fix"] == (
        f"Publish CNAME {token}._domainkey.example.org {token}.dkim.amazonses.com"
    )
    assert status == 2


def test_a_mail_from_domain_without_amazonses_in_its_spf_fails(
    good_ses: Channel, zone: Zone
) -> None:
    zone.set("bounce.example.org", "TXT", "v=spf1 mx ~all")

    status, output = run_doctor("--json")

    (spf,) = [f for f in findings(output, "spf") if f["level"] == "failure"]
    assert spf["fix"] == 'Publish TXT bounce.example.org "v=spf1 mx include:amazonses.com ~all"'
    assert status == 2


def test_a_mail_from_domain_whose_mx_is_not_ses_fails(good_ses: Channel, zone: Zone) -> None:
    zone.set("bounce.example.org", "MX", (10, "mx.example.org"))

    status, output = run_doctor("--json")

    (mx,) = findings(output, "mx")
    assert mx["level"] == "failure"
    assert mx["fix"] == f"Publish MX bounce.example.org 10 feedback-smtp.{SES_REGION}.amazonses.com"
    assert status == 2


def test_dmarc_fails_when_neither_spf_nor_dkim_align_strictly(
    good_ses: Channel, ses_peer: SesPeer, zone: Zone, settings: Any
) -> None:
    # SES signs as the parent domain (its identity) and uses its own MAIL FROM; the subdomain
    # the mail comes from asks for strict alignment.
    ses_peer.client("ses").set_identity_mail_from_domain(Identity="example.org")
    Channel.objects.filter(pk=good_ses.pk).update(
        config={**good_ses.config, "from_email": "news@letters.example.org"}
    )
    settings.DEFAULT_FROM_EMAIL = "news@letters.example.org"
    zone.set(
        "_dmarc.letters.example.org",
        "TXT",
        "v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:d@example.org",
    )

    status, output = run_doctor("--json")

    dmarc = [f for f in findings(output, "dmarc") if f["level"] == "failure"]
    assert len(dmarc) == 1
    assert (
        "SPF authenticates amazonses.com (strict alignment) and DKIM example.org"
        in (dmarc[0]["message"])
    )
    assert dmarc[0]["fix"].startswith("Have the provider sign with d=letters.example.org")
    assert (
        'TXT _dmarc.letters.example.org "v=DMARC1; p=reject; adkim=r; aspf=s;' in (dmarc[0]["fix"])
    )
    (mail_from,) = [f for f in findings(output, "spf") if f["level"] == "warning"]
    assert (
        "MX bounce.letters.example.org 10 feedback-smtp.eu-west-1.amazonses.com"
        in (mail_from["fix"])
    )
    assert status == 2


def test_an_ses_quota_used_up_fails(good_ses: Channel, ses_peer: SesPeer) -> None:
    client = ses_peer.client("ses")
    quota = client.get_send_quota()
    for _ in range(int(quota["Max24HourSend"])):
        client.send_raw_email(
            Source="news@example.org",
            Destinations=["reader@example.net"],
            RawMessage={"Data": b"Subject: x\r\n\r\nx\r\n"},
        )

    status, output = run_doctor("--json")

    (ses,) = [f for f in findings(output, "ses") if f["level"] == "failure"]
    assert "The SES 24-hour quota is used up (200 of 200 messages" in ses["message"]
    assert "Ask AWS for a higher sending quota" in ses["fix"]
    assert status == 2


def test_an_ses_quota_mostly_used_is_a_warning(good_ses: Channel, ses_peer: SesPeer) -> None:
    client = ses_peer.client("ses")
    for _ in range(170):
        client.send_raw_email(
            Source="news@example.org",
            Destinations=["reader@example.net"],
            RawMessage={"Data": b"Subject: x\r\n\r\nx\r\n"},
        )

    status, output = run_doctor("--json")

    (ses,) = [f for f in findings(output, "ses") if f["level"] == "warning"]
    assert ses["message"].startswith("85% of the SES 24-hour quota is used (170 of 200")
    assert status == 1


def test_an_ses_rate_limit_above_the_accounts_is_a_warning(good_ses: Channel) -> None:
    Channel.objects.filter(pk=good_ses.pk).update(rate_limit_per_second=14)

    status, output = run_doctor("--json")

    (ses,) = [f for f in findings(output, "ses") if f["level"] == "warning"]
    assert ses["fix"] == "Set the channel's rate limit (rate_limit_per_second) to 1 or less."
    assert status == 1


def test_an_ses_account_in_the_sandbox_paused_and_on_probation_fails(
    good_ses: Channel, ses_peer: SesPeer
) -> None:
    ses_peer.account.update(
        ProductionAccessEnabled=False, SendingEnabled=False, EnforcementStatus="PROBATION"
    )

    status, output = run_doctor("--json")

    ses = findings(output, "ses")
    messages = " ".join(f["message"] for f in ses)
    assert "Sending is paused for this SES account in eu-west-1" in messages
    assert "in the sandbox" in messages
    assert "under enforcement (PROBATION)" in messages
    assert {f["level"] for f in ses} == {"failure", "warning", "ok"}
    assert status == 2


def _seed(sent: int, bounces: int, complaints: int, channel: Channel) -> None:
    now = timezone.now()
    dispatch = DispatchFactory.create()
    deliveries = Delivery.objects.bulk_create(
        Delivery(
            dispatch=dispatch,
            channel=channel,
            status=Delivery.Status.SENT,
            sent_at=now - timedelta(days=2),
            next_attempt_at=now,
            kind=Delivery.Kind.TRANSACTIONAL,
            recipient=f"r{n}@example.net",
        )
        for n in range(sent)
    )
    SesFeedback.objects.bulk_create(
        [
            *(
                SesFeedback(
                    sns_message_id=f"b{n}",
                    topic_arn="arn",
                    type=SesFeedback.Type.BOUNCE,
                    subtype="Permanent",
                    delivery=deliveries[n],
                )
                for n in range(bounces)
            ),
            *(
                SesFeedback(
                    sns_message_id=f"c{n}",
                    topic_arn="arn",
                    type=SesFeedback.Type.COMPLAINT,
                    delivery=deliveries[-1 - n],
                )
                for n in range(complaints)
            ),
            # A transient bounce is no hard bounce.
            SesFeedback(sns_message_id="t", topic_arn="arn", type="bounce", subtype="Transient"),
        ]
    )


def test_bounce_and_complaint_rates_over_the_thresholds_fail(good_smtp: Channel) -> None:
    _seed(sent=1000, bounces=60, complaints=4, channel=good_smtp)

    status, output = run_doctor("--json")

    rates = findings(output, "rates")
    assert [f["level"] for f in rates] == ["failure", "failure"]
    assert rates[0]["message"].startswith(
        "The bounce rate of the last 7 days is 6.00% (60 of 1000 emails), at or over 5.0%"
    )
    assert rates[1]["message"].startswith(
        "The complaint rate of the last 7 days is 0.40% (4 of 1000 emails), at or over 0.3%"
    )
    assert "double opt-in" in rates[1]["fix"]
    assert status == 2


def test_rates_between_the_thresholds_warn(good_smtp: Channel) -> None:
    _seed(sent=1000, bounces=25, complaints=2, channel=good_smtp)

    status, output = run_doctor("--json")

    assert [f["level"] for f in findings(output, "rates")] == ["warning", "warning"]
    assert status == 1


def test_a_small_sample_over_the_thresholds_only_warns(good_smtp: Channel) -> None:
    _seed(sent=50, bounces=5, complaints=1, channel=good_smtp)

    status, output = run_doctor("--json")

    rates = findings(output, "rates")
    assert [f["level"] for f in rates] == ["warning", "warning"]
    assert "(fewer than 100 emails: a warning only)" in rates[0]["message"]
    assert status == 1


def test_rates_under_the_thresholds_are_ok(good_smtp: Channel) -> None:
    _seed(sent=1000, bounces=19, complaints=0, channel=good_smtp)

    status, output = run_doctor("--json")

    (rates,) = findings(output, "rates")
    assert rates["level"] == "ok"
    assert "1000 emails: 19 hard bounces (1.90%)" in rates["message"]
    assert status == 0
