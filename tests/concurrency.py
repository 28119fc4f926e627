"""Running functions at the same moment in threads, as concurrent requests or workers would.

Each thread gets its own database connection (Django opens one per thread) and closes it when
its function is done, so PostgreSQL sees separate sessions racing for the same rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from django.db import connection

T = TypeVar("T")

#: How long a thread waits for the others to be ready before giving up (BrokenBarrierError).
BARRIER_TIMEOUT = 10.0
#: How long the caller waits for each thread to finish.
JOIN_TIMEOUT = 60.0


@dataclass
class Outcomes(Generic[T]):
    """What the threads did: the results of the functions that returned, in the order the
    functions were given, and what the others raised."""

    results: list[T] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def all_results(self) -> list[T]:
        """Every result, after asserting that no thread raised (the errors are the message)."""
        assert not self.errors, self.errors
        return self.results


def run_at_once(*functions: Callable[[], T], timeout: float = JOIN_TIMEOUT) -> Outcomes[T]:
    """Run each function in a thread of its own, all released together by a barrier; wait for
    them and return what they did. A thread still running after ``timeout`` seconds is
    reported as a TimeoutError among the errors."""
    barrier = threading.Barrier(len(functions))
    returned: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(index: int, function: Callable[[], T]) -> None:
        try:
            barrier.wait(timeout=BARRIER_TIMEOUT)
            returned[index] = function()
        except BaseException as error:  # reported to the caller's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(functions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    errors.extend(
        TimeoutError(f"{thread.name} still running after {timeout} s")
        for thread in threads
        if thread.is_alive()
    )
    return Outcomes(results=[returned[index] for index in sorted(returned)], errors=errors)
