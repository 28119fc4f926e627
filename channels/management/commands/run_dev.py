"""Start the development web server and a django-q2 worker together; Ctrl-C stops both."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

PR_SET_PDEATHSIG = 1


def end_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` making the child receive SIGTERM when this process dies, however it dies.

    Ctrl-C and SIGTERM reach `run_dev`, which stops its children in order; SIGKILL (an IDE's
    stop button, `kill -9`, the OOM killer) runs no code of ours, so only the kernel can tell
    the children. Linux's `prctl(PR_SET_PDEATHSIG)` does, with no extra process or polling
    thread that a watchdog would need. Django's autoreloader ends its server child on SIGTERM,
    and qcluster stops its workers on it. Elsewhere (macOS) it returns None: no such call.
    """
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        # The parent may have died between fork and prctl: then nobody would signal us.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


class Command(BaseCommand):
    help = "Run `runserver` and `qcluster` side by side (what `make run` starts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Where runserver listens.")

    def handle(self, *args: Any, **options: Any) -> None:
        base = f"http://{options['addr']}"
        manage = [sys.executable, "manage.py"]
        # Each child gets its own session so that Ctrl-C reaches us once and we stop them in order.
        # And each ends with us even when we are killed without a chance to stop it.
        preexec = end_with_parent()
        web = subprocess.Popen(  # noqa: S603
            [*manage, "runserver", options["addr"]], start_new_session=True, preexec_fn=preexec
        )
        worker = subprocess.Popen(  # noqa: S603
            [*manage, "qcluster"], start_new_session=True, preexec_fn=preexec
        )
        children = [web, worker]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    self.style.SUCCESS("The publishing system is starting:"),
                    f"  Home (archive):  {base}/",
                    f"  Admin:           {base}/admin/",
                    f"  API docs:        {base}/api/docs/",
                    f"  Sign-up page:    {base}/subscribe/",
                    f"  Archive:         {base}/p/",
                    f"  Outbox (.eml):   {settings.EMAIL_OUTBOX_DIR}",
                    "Press Ctrl-C to stop the web server and the worker.",
                    "",
                ]
            )
        )

        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
        self.stdout.write("Stopped the web server and the worker.")
