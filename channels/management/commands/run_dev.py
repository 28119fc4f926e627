"""Start the development web server and a django-q2 worker together; Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Run `runserver` and `qcluster` side by side (what `make run` starts)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Where runserver listens.")

    def handle(self, *args: Any, **options: Any) -> None:
        base = f"http://{options['addr']}"
        manage = [sys.executable, "manage.py"]
        # Each child gets its own session so that Ctrl-C reaches us once and we stop them in order.
        web = subprocess.Popen([*manage, "runserver", options["addr"]], start_new_session=True)  # noqa: S603
        worker = subprocess.Popen([*manage, "qcluster"], start_new_session=True)  # noqa: S603
        children = [web, worker]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    self.style.SUCCESS("The publishing system is starting:"),
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
