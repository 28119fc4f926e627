"""django-q2 entry points of the delivery engine (filled in by the delivery engine issue)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def plan_dispatch(dispatch_id: int) -> None:
    """Fan a dispatch out into deliveries. Not built yet: logs and leaves the dispatch queued."""
    logger.warning("plan_dispatch(%s): the delivery engine is not built yet", dispatch_id)
