"""Production settings with the tracking benchmark's URLconf (which adds the bare view)."""

from __future__ import annotations

from config.settings.prod import *  # noqa: F403

ROOT_URLCONF = "bench.tracking_site.urls"
