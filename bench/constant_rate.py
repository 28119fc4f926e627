"""A constant request rate from wrk, with coordinated omission corrected (bench/constant_rate.lua).

wrk (Debian's package, C, one event loop per thread) drives the load; the Lua script gives each
connection a schedule so that together they hold one constant rate, and counts each latency
from the moment the request was due, so a slow answer also counts the wait of every request it
held back (wrk2's correction). `constant_rate` runs it and reads what the script prints.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().with_name("constant_rate.lua")
INSTALL_HINT = "wrk is needed: `make bench-tools` (Debian's package: apt-get install -y wrk)"


@dataclass(frozen=True)
class ConstantRateRun:
    """One run: every latency (ms, sorted), counted from the request's due time."""

    target: float
    latencies_ms: list[float]
    failures: int
    socket_errors: int
    seconds: float

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def achieved(self) -> float:
        """Answers per second, from the first due time to the last answer."""
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.failures + self.socket_errors

    def percentile(self, percent: float) -> float:
        """The nearest-rank percentile, in ms; raises ValueError on a run with no answer."""
        if not self.latencies_ms:
            raise ValueError("no request was answered")
        rank = max(1, math.ceil(percent / 100 * len(self.latencies_ms)))
        return self.latencies_ms[rank - 1]


def wrk_binary() -> str:
    """The path of wrk; raises SystemExit with the way to install it when it is missing."""
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit(INSTALL_HINT)
    return path


def parse(output: str, target: float) -> ConstantRateRun:
    """Read what constant_rate.lua and wrk printed; raises ValueError if the script's lines
    are missing (wrk stopped before its `done` hook)."""
    base: float | None = None
    last = 0.0
    failures = 0
    latencies: list[float] = []
    for line in output.splitlines():
        if line.startswith("constant-rate base "):
            base = float(line.split()[2])
        elif line.startswith("constant-rate thread "):
            fields = line.split()[2:]
            last = max(last, float(fields[0]))
            failures += int(fields[1])
            latencies.extend(float(value) / 1000 for value in fields[2:])
    if base is None:
        raise ValueError(f"constant_rate.lua printed nothing; wrk said:\n{output}")
    socket_errors = 0
    match = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        output,
    )
    if match:
        socket_errors = sum(int(value) for value in match.groups())
    latencies.sort()
    return ConstantRateRun(
        target=target,
        latencies_ms=latencies,
        failures=failures,
        socket_errors=socket_errors,
        seconds=max(0.0, (last - base) / 1_000_000),
    )


def constant_rate(
    url: str,
    rate: float,
    seconds: int,
    connections: int = 16,
    headers: dict[str, str] | None = None,
) -> ConstantRateRun:
    """GET `url` at `rate` requests per second for `seconds`, over `connections` connections
    (one wrk thread each: more connections let a slow answer hold back fewer requests)."""
    command = [
        wrk_binary(),
        f"-t{connections}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout=10s",
        "-s",
        str(SCRIPT),
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command += [url, "--", f"{rate:.3f}", str(connections)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"wrk failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return parse(result.stdout, rate)
