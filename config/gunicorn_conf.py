"""gunicorn's configuration, as the Dockerfile runs it (``--config python:config.gunicorn_conf``).

Two jobs. No line gunicorn writes (access log: request line, Referer, any header; error log:
"Error handling request /preferences/...") carries a subscriber's link token or another secret:
every record of both loggers goes through ``config.redaction.redact``, as Django's own log lines
do (docs/decisions/0002 and 0072). And a worker's garbage collector does not stop it for 180 ms
to walk the whole loaded site (decision 0086): the objects that live as long as the worker
(modules, URL patterns, serializers, what the first requests build and keep) are moved out of
the collector's sight with ``gc.freeze()``. Command-line options still override anything set
here.
"""

from __future__ import annotations

import gc
from typing import Any

from gunicorn.glogging import Logger  # type: ignore[import-untyped]  # no stubs

from config.logging import RedactingFilter


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn's Logger is untyped
    """gunicorn's logger, with the redacting filter on its access and error loggers.

    The filter formats each record (the access log's atoms included) and redacts the whole
    line, so whatever ``access_log_format`` an operator picks, no token reaches the output.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactingFilter) for f in log.filters):
                log.addFilter(RedactingFilter())


logger_class = RedactingLogger


#: The request counts after which a worker freezes again what its first requests built and kept
#: (lazily built URL resolvers, templates, schema). Cyclic garbage alive at those moments is
#: never collected: a few requests' worth, once.
FREEZE_AFTER_REQUESTS = frozenset({1, 10, 100, 1000})


def post_worker_init(worker: Any) -> None:
    """Freeze what loading the site created (about 270,000 objects): a full collection, which
    otherwise walks them all every few thousand requests (about 180 ms in the API benchmark,
    docs/performance.md), then only walks what requests created since."""
    gc.freeze()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    if getattr(worker, "nr", 0) in FREEZE_AFTER_REQUESTS:
        gc.freeze()
