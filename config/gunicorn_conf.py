"""gunicorn's configuration, as the Dockerfile runs it (``--config python:config.gunicorn_conf``).

Its one job: no line gunicorn writes (access log: request line, Referer, any header; error log:
"Error handling request /preferences/...") carries a subscriber's link token or another secret.
Every record of both loggers goes through ``config.redaction.redact``, as Django's own log lines
do (docs/decisions/0002 and 0072). Command-line options still override anything set here.
"""

from __future__ import annotations

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
