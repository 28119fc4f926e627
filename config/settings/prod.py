"""Production: refuses to start with unsafe values, and passes `manage.py check --deploy`."""

from __future__ import annotations

import os

from config.env import check_production_environment, env
from config.settings.base import *  # noqa: F403
from config.settings.base import ALLOWED_HOSTS, SECRET_KEY, STORAGES

DEBUG = env.bool("DEBUG", default=False)
if not DEBUG:
    check_production_environment(os.environ, secret_key=SECRET_KEY, allowed_hosts=ALLOWED_HOSTS)

SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Health probes come from the load balancer over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
# Compressed (gzip, and Brotli when installed) copies and content-hashed names, which WhiteNoise
# serves with far-future caching headers: `collectstatic` must run first (the image does it).
STORAGES = {
    **STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
