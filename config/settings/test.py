"""Tests: PostgreSQL when DATABASE_URL is set (CI), SQLite otherwise; tasks run inline."""

from __future__ import annotations

from config.env import DEVELOPMENT_SECRET_KEYS, env
from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, Q_CLUSTER, VAR_DIR

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default=sorted(DEVELOPMENT_SECRET_KEYS)[1])
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The suite's peers (pytest-httpserver, raw sockets) listen on this machine; the SSRF tests set
# it back to empty (decision 0071).
OUTBOUND_ALLOWED_HOSTS = env.list("OUTBOUND_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Same reason as in dev: tests run in one process with a local-memory cache.
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
EMAIL_OUTBOX_DIR = VAR_DIR / "test-outbox"
# Unit tests run tasks inline; crash tests start a real qcluster with Q_SYNC=false.
Q_CLUSTER = {**Q_CLUSTER, "sync": env.bool("Q_SYNC", default=True)}
LOGGING_CONFIG = (
    None if env.bool("TEST_QUIET_LOGGING", default=False) else "logging.config.dictConfig"
)
TESTING = True
# The live server's thread would otherwise keep its connection to the test database open, and
# PostgreSQL refuses to drop a database somebody is connected to.
for _database in DATABASES.values():
    _database["CONN_MAX_AGE"] = 0
# Tests run with DEBUG off and no `collectstatic`: WhiteNoise finds files through the finders.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
