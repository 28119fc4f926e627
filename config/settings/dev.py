"""Development: works with no variables (SQLite under var/, local-memory cache, .eml outbox)."""

from __future__ import annotations

import os

from config.env import DEVELOPMENT_SECRET_KEYS, check_production_environment, env
from config.settings.base import *  # noqa: F403
from config.settings.base import ALLOWED_HOSTS, LOGGING, REDIS_URL, SECRET_KEY, VAR_DIR

DEBUG = env.bool("DEBUG", default=True)
if DEBUG:
    SECRET_KEY = SECRET_KEY or sorted(DEVELOPMENT_SECRET_KEYS)[0]
    ALLOWED_HOSTS = ALLOWED_HOSTS or ["localhost", "127.0.0.1", "[::1]"]
else:
    check_production_environment(os.environ, secret_key=SECRET_KEY, allowed_hosts=ALLOWED_HOSTS)

if not REDIS_URL:
    # Local memory is neither shared between processes nor atomic across them, which is what
    # django-ratelimit's checks refuse; it is acceptable on one developer's machine only.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# A developer reads logs in a terminal: text by default here, JSON (the base default) elsewhere.
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
LOGGING["handlers"]["stdout"]["formatter"] = LOG_FORMAT

# SQLite cannot create the folder of its database file: make var/ on first use.
VAR_DIR.mkdir(parents=True, exist_ok=True)
