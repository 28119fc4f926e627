"""The doctor's settings refuse bad values at start-up, naming the variable and the limit."""

from __future__ import annotations

import pytest

from tests.config.test_settings import production_environment, run_manage


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "DOCTOR_NAMESERVERS",
            "127.0.0.1:5353,ns.example.com",
            "DOCTOR_NAMESERVERS: 'ns.example.com' is not an IP address with an optional port "
            "from 1 to 65535",
        ),
        ("DOCTOR_NAMESERVERS", "127.0.0.1:99999", "DOCTOR_NAMESERVERS: '127.0.0.1:99999'"),
        (
            "DOCTOR_COMPLAINT_WARNING_RATE",
            "0.5",
            "DOCTOR_COMPLAINT_WARNING_RATE (0.5) and DOCTOR_COMPLAINT_FAILURE_RATE (0.003) must "
            "be fractions with 0 < warning <= failure <= 1",
        ),
    ],
)
def test_a_bad_doctor_setting_stops_start_up_naming_it(
    variable: str, value: str, message: str
) -> None:
    result = run_manage(production_environment(**{variable: value}), "check")

    assert result.returncode != 0
    assert message in result.stderr


def test_name_servers_with_ports_and_ipv6_are_accepted() -> None:
    result = run_manage(
        production_environment(DOCTOR_NAMESERVERS="192.0.2.53,192.0.2.54:5353,[2001:db8::53]:53"),
        "check",
    )

    assert result.returncode == 0, result.stderr
