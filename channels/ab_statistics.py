"""The statistics of an A/B subject test (decision 0079), with the standard library only.

- **Decision**: the subject with the highest rate is tested against each other subject with a
  pooled two-proportion z-test (two-sided); with more than two subjects the p-values are
  Bonferroni-corrected (multiplied by the number of comparisons), so the chance of declaring a
  winner where there is none stays at 5% at most. The best subject wins when every corrected
  p-value is below 0.05 and every subject has the minimum sample; otherwise the first subject
  goes to the rest.
- **Intervals**: Wilson score intervals at 95%, which stay inside [0, 1] and behave with few
  successes (the normal "Wald" interval gives [0, 0] for 0 of 30).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

#: The two-sided 95% quantile of the standard normal distribution.
Z_95 = 1.959963984540054
ALPHA = 0.05

METHOD = (
    "Two-proportion z-test (pooled, two-sided), the best subject against each other one, "
    "Bonferroni-corrected, at 95% confidence; intervals: Wilson score, 95%"
)

#: Why the first subject was sent.
REASON_SIGNIFICANT = "significant"
REASON_NOT_SIGNIFICANT = "not_significant"
REASON_SAMPLE_TOO_SMALL = "sample_too_small"


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``trials``; (0, 1) without trials."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p-value) of the pooled two-proportion z-test of x1/n1 against x2/n2.

    Without any success or any failure in either group the rates cannot differ: (0, 1).
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Sample:
    """One subject's test: ``successes`` (people who opened, or clicked) of ``trials``
    (delivered test messages)."""

    successes: int
    trials: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.trials if self.trials else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.trials)


@dataclass(frozen=True)
class Decision:
    #: The subject the rest gets: the winner, or the first (index 0).
    winner: int
    significant: bool
    reason: str
    #: The best subject's largest corrected p-value against the others (None: not tested).
    p_value: float | None
    #: The subject with the highest rate (the candidate), whether it won or not.
    best: int
    p_values: list[float | None] = field(default_factory=list)


def decide(samples: Sequence[Sample], min_sample: int, alpha: float = ALPHA) -> Decision:
    """The winner of the test (see the module's docstring); the first subject when the best is
    not significantly better than every other one, or when a subject lacks the minimum sample.
    Ties go to the earlier subject."""
    if len(samples) < 2:
        raise ValueError("An A/B test compares at least two subjects.")
    best = max(range(len(samples)), key=lambda i: (samples[i].rate or 0.0, -i))
    comparisons = len(samples) - 1
    p_values: list[float | None] = []
    for index, sample in enumerate(samples):
        if index == best:
            p_values.append(None)
            continue
        _, p = two_proportion_z_test(
            samples[best].successes, samples[best].trials, sample.successes, sample.trials
        )
        p_values.append(min(1.0, p * comparisons))
    tested = [p for p in p_values if p is not None]
    p_value = max(tested) if tested else None
    if any(sample.trials < min_sample for sample in samples):
        return Decision(0, False, REASON_SAMPLE_TOO_SMALL, p_value, best, p_values)
    if (
        p_value is not None
        and p_value < alpha
        and all(
            (samples[best].rate or 0.0) > (sample.rate or 0.0)
            for index, sample in enumerate(samples)
            if index != best
        )
    ):
        return Decision(best, True, REASON_SIGNIFICANT, p_value, best, p_values)
    return Decision(0, False, REASON_NOT_SIGNIFICANT, p_value, best, p_values)
