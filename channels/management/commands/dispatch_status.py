"""Show how far dispatches have got: deliveries by status and channel; --watch until settled."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from channels.progress import STATUS_ORDER, DispatchProgress, dispatch_progress, dispatches_of
from publishing.models import Dispatch


class Command(BaseCommand):
    help = (
        "Deliveries of a publication's dispatches (or of every dispatch still sending) by status "
        "and channel. With --watch, a progress bar until every delivery is settled."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("publication", nargs="?", help="The publication's slug.")
        parser.add_argument("--watch", action="store_true", help="Follow until settled.")
        parser.add_argument(
            "--interval", type=float, default=1.0, help="Seconds between refreshes (--watch)."
        )
        parser.add_argument(
            "--timeout", type=float, default=0.0, help="Give up watching after this many seconds."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] <= 0:
            raise CommandError("--interval must be above 0 seconds.")
        dispatches = dispatches_of(options["publication"])
        if not dispatches:
            if options["publication"]:
                slug = options["publication"]
                raise CommandError(f"No dispatch of a publication with slug {slug!r}.")
            self.stdout.write("No dispatches yet.")
            return
        progresses = [dispatch_progress(d) for d in dispatches]
        for dispatch, progress in zip(dispatches, progresses, strict=True):
            self._print(dispatch, progress)
        if options["watch"]:
            self._watch(dispatches, progresses, options["interval"], options["timeout"])

    def _print(self, dispatch: Dispatch, progress: DispatchProgress) -> None:
        self.stdout.write(
            f"Dispatch {dispatch.pk} of {dispatch.publication.slug!r} ({dispatch.status}): "
            f"{progress.settled}/{progress.total} settled ({progress.percent:.1f}%)"
        )
        width = max([len("channel"), *(len(name) for name in progress.by_channel)])
        header = "  ".join(f"{s:>9}" for s in STATUS_ORDER)
        self.stdout.write(f"  {'channel':<{width}}  {header}  {'total':>9}")
        for channel, counts, total in progress.rows():
            cells = "  ".join(f"{c:>9}" for c in counts)
            self.stdout.write(f"  {channel:<{width}}  {cells}  {total:>9}")
        totals = "  ".join(f"{progress.by_status[s]:>9}" for s in STATUS_ORDER)
        self.stdout.write(f"  {'all':<{width}}  {totals}  {progress.total:>9}")
        if progress.uncertain:
            self.stdout.write(
                f"  Uncertain hand-overs (no answer after sending): {progress.uncertain}; "
                f"{progress.uncertain_resent} resent (may have arrived twice), "
                f"{progress.by_status['uncertain']} not resent "
                "(retry_deliveries --uncertain sends them again)."
            )

    def _watch(
        self,
        dispatches: list[Dispatch],
        progresses: list[DispatchProgress],
        interval: float,
        timeout: float,
    ) -> None:
        deadline = time.monotonic() + timeout if timeout > 0 else None
        bar = tqdm(
            total=sum(p.total for p in progresses),
            unit="msg",
            desc="settled",
            file=self.stderr,
            dynamic_ncols=True,
        )
        try:
            while True:
                bar.total = sum(p.total for p in progresses)
                bar.n = sum(p.settled for p in progresses)
                failed = sum(p.retryable for p in progresses)
                bar.set_postfix(failed=failed, refresh=False)
                bar.refresh()
                if all(p.is_settled for p in progresses):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    raise CommandError("Still not settled when --timeout ran out.")
                time.sleep(interval)
                for dispatch in dispatches:
                    dispatch.refresh_from_db(fields=["status"])
                progresses = [dispatch_progress(d) for d in dispatches]
        finally:
            bar.close()
        for dispatch, progress in zip(dispatches, progresses, strict=True):
            self._print(dispatch, progress)
        self.stdout.write(self.style.SUCCESS("Settled."))
