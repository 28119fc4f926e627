"""Production settings with the benchmark's URLconf (which adds the bare view)."""

from __future__ import annotations

from config.settings.prod import *  # noqa: F403

ROOT_URLCONF = "bench.api_site.urls"
