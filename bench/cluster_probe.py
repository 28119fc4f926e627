"""A qcluster under observation, for the scale part of bench/delivery.py.

    BENCH_PROBE_DIR=/tmp/probe DJANGO_SETTINGS_MODULE=config.settings.prod \\
        python bench/cluster_probe.py            # from the repository's root

Runs ``manage.py qcluster`` in this process with two additions that change nothing the cluster
does:

- every database connection any process of the cluster opens gets an execute wrapper
  (``connection.execute_wrappers``, installed from the ``connection_created`` signal) counting
  the statements that process executes (an ``executemany`` counts each of its parameter sets);
- each process knows its role (main, sentinel, pusher, worker, monitor: django-q2's process
  targets are wrapped to say so) and writes ``<pid>.json`` in BENCH_PROBE_DIR (its role, its
  parent, its statements so far, its peak memory VmHWM and its PSS) when it receives SIGUSR1
  (the bench asks for a snapshot before publishing and once every delivery is settled), at
  most once a second while it executes statements, and when it exits.
"""

from __future__ import annotations

import json
import multiprocessing.util
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class _State:
    """This process's own figures; a fork starts again from zero (see ``_mine``)."""

    pid = 0
    role = "main"
    statements = 0
    last_write = 0.0
    writing = False
    again = False
    gc_seconds = 0.0
    gc_started = 0.0
    gc_runs = [0, 0, 0]


STATE = _State()


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        STATE.gc_started = time.perf_counter()
    else:
        STATE.gc_seconds += time.perf_counter() - STATE.gc_started
        STATE.gc_runs[info["generation"]] += 1


def _mine() -> _State:
    pid = os.getpid()
    if STATE.pid != pid:
        # First call in a new process: the counts inherited from the parent are not ours.
        STATE.pid = pid
        STATE.statements = 0
        STATE.last_write = 0.0
        STATE.writing = False
        STATE.again = False
        # Runs when a multiprocessing child's target returns, and at the main process's exit
        # (after it has joined the sentinel); negative priority: after everything else.
        multiprocessing.util.Finalize(None, _write, exitpriority=-100)
    return STATE


def _proc_kb(path: str, field: str) -> int:
    for line in Path(path).read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def _write() -> None:
    state = _mine()
    if state.writing:
        # A snapshot signal arrived while this process was writing: write once more after.
        state.again = True
        return
    state.writing = True
    try:
        folder = Path(os.environ["BENCH_PROBE_DIR"])
        while True:
            state.again = False
            record = {
                "pid": state.pid,
                "ppid": os.getppid(),
                "role": state.role,
                "statements": state.statements,
                # The peak resident set (pages shared with the parent after fork included),
                # and the proportional share now (shared pages divided among their processes).
                "vmhwm_kb": _proc_kb("/proc/self/status", "VmHWM:"),
                "pss_kb": _proc_kb("/proc/self/smaps_rollup", "Pss:"),
                "at": time.time(),
                "gc_seconds": state.gc_seconds,
                "gc_runs": state.gc_runs,
            }
            temporary = folder / f".{state.pid}.tmp"
            temporary.write_text(json.dumps(record))
            temporary.replace(folder / f"{state.pid}.json")
            state.last_write = time.monotonic()
            if not state.again:
                break
    except OSError:
        pass
    finally:
        state.writing = False


def _count(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
    state = _mine()
    if many:
        try:
            state.statements += len(params)
        except TypeError:
            state.statements += 1
    else:
        state.statements += 1
    try:
        return execute(sql, params, many, context)
    finally:
        if time.monotonic() - state.last_write > 1.0:
            _write()


def _install(sender: Any, connection: Any, **kwargs: Any) -> None:
    # A closed connection keeps its wrapper object (and its list) when it reconnects.
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def _tagged(role: str, target: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        _mine().role = role
        _write()
        return target(*args, **kwargs)

    return run


def _snapshot(signum: int, frame: Any) -> None:
    _write()


def main() -> None:
    if "BENCH_PROBE_DIR" not in os.environ:
        raise SystemExit("BENCH_PROBE_DIR is not set")
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
    from django.db.backends.signals import connection_created

    connection_created.connect(_install, weak=False)
    signal.signal(signal.SIGUSR1, _snapshot)  # inherited by every process forked below
    _mine()
    import gc

    gc.callbacks.append(_gc_timer)
    import django

    django.setup()
    import django_q.cluster as q_cluster

    q_cluster.Sentinel = _tagged("sentinel", q_cluster.Sentinel)
    q_cluster.pusher = _tagged("pusher", q_cluster.pusher)
    q_cluster.worker = _tagged("worker", q_cluster.worker)
    q_cluster.monitor = _tagged("monitor", q_cluster.monitor)
    _write()
    from django.core.management import execute_from_command_line

    execute_from_command_line([str(ROOT / "manage.py"), "qcluster"])


if __name__ == "__main__":
    main()
