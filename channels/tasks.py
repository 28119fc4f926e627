"""django-q2 entry points of the delivery engine: ids in, one service call each.

Tasks are hints, not the truth: each may run twice or never (see docs/delivery.md). The ledger
makes a second run harmless and the sweeper replaces a task that never ran.
"""

from __future__ import annotations

from channels import digests, engagement, read_hours
from channels.engine import batches, fanout, relay, sweeper


def plan_dispatch(dispatch_id: int) -> int:
    return fanout.plan_dispatch(dispatch_id)


def send_batch(channel_id: int) -> int:
    return batches.send_batches(channel_id)


def relay_events() -> int:
    return relay.relay_events()


def sweep() -> None:
    sweeper.sweep()


def send_digests() -> int:
    return digests.send_digests_for_a_while()


def classify_engagement() -> int:
    return engagement.classify_for_a_while()


def refresh_read_hours() -> int:
    return read_hours.refresh_read_hours()
