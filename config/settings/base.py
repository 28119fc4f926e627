"""Settings shared by every environment. Each value comes from the environment (config.env).

The dev, test and prod modules import this one and change only what differs between them.
Every variable is documented in docs/configuration.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from corsheaders.defaults import default_headers as default_cors_headers
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from config.env import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY: str = env.str("SECRET_KEY", default="")
# Old keys stay valid for signed links and sessions while a new SECRET_KEY rolls out.
SECRET_KEY_FALLBACKS: list[str] = env.list("SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
#: Public base URL used in links sent by email (confirmation, preferences, unsubscribe).
SITE_URL: str = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SITE_NAME: str = env.str("SITE_NAME", default="Publishing")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.syndication",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "corsheaders",
    "django_q",
    "simple_history",
    # The body's Markdown editor (decision 0077): its widget and static files only; its URLs
    # are routed under the admin with permissions (publishing.editor), never included as is.
    "markdownx",
    "events",
    "publishing",
    "subscribers",
    "channels",
]

MIDDLEWARE = [
    "config.logging.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files before anything else touches the request (decision 0073).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The admin in the editor's time zone, from a cookie set by the admin's pages (decision 0076).
    "publishing.middleware.AdminTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Turns django-ratelimit's Ratelimited into RATELIMIT_VIEW's 429 page.
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

#: A folder of templates that take precedence over the project's own (docs/theming.md): an
#: operator's theme overrides templates/base.html's blocks, or any public page, without forking.
THEME_TEMPLATES_DIR: str = env.str("THEME_TEMPLATES_DIR", default="")

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [
            *([Path(THEME_TEMPLATES_DIR)] if THEME_TEMPLATES_DIR else []),
            BASE_DIR / "templates",
        ],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "config.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# PostgreSQL through psycopg 3 in production; see docs/decisions/0003-database-connections.md.
DATABASE_CONN_MAX_AGE = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASE_STATEMENT_TIMEOUT_MS = env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=30_000)
#: The fan-out's INSERT ... SELECT of a dispatch's deliveries (and of an A/B test's rest) runs
#: with this statement_timeout instead: a million recipients take longer than the 30 s that
#: protect every other query (decision 0087).
FANOUT_STATEMENT_TIMEOUT_MS = env.int("FANOUT_STATEMENT_TIMEOUT_MS", default=900_000)
#: The fan-out inserts subscribers in ranges of their ids, each committed on its own so that
#: sending starts before the fan-out ends: the first range spans this many ids, each next
#: one four times more, up to FANOUT_RANGE (decision 0088).
FANOUT_FIRST_RANGE = env.int("FANOUT_FIRST_RANGE", default=2_000)
FANOUT_RANGE = env.int("FANOUT_RANGE", default=128_000)


def database_from_url(url: str) -> dict[str, Any]:
    """Build a DATABASES entry from a URL, with persistent, health-checked connections."""
    config: dict[str, Any] = env.db_url_config(url)
    config["CONN_MAX_AGE"] = DATABASE_CONN_MAX_AGE
    config["CONN_HEALTH_CHECKS"] = True
    if config["ENGINE"] == "django.db.backends.postgresql":
        options = config.setdefault("OPTIONS", {})
        # A runaway query is cancelled by the server instead of holding a worker forever.
        options.setdefault("options", f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}")
        options.setdefault("connect_timeout", 10)
    elif config["ENGINE"] == "django.db.backends.sqlite3":
        # Development runs a web process and a worker on one file (decision 0074): WAL lets
        # readers go on while one writes; a write transaction takes the lock when it begins
        # (IMMEDIATE), so it waits its turn there (up to the timeout, in seconds) instead of
        # failing half-way with "database is locked" when a read turns into a write.
        options = config.setdefault("OPTIONS", {})
        options.setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 20)
    return config


DATABASES = {
    "default": database_from_url(
        env.str("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------------
# Rate limits and API throttles count in the cache: it must be shared and atomic (Redis).
REDIS_URL: str = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "publishing",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth, sessions, security ---------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
CORS_ALLOWED_ORIGINS: list[str] = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
RATELIMIT_VIEW = "config.ratelimit.ratelimited"
# Behind a proxy that sets X-Forwarded-For, set RATELIMIT_IP_META_KEY=HTTP_X_FORWARDED_FOR.
RATELIMIT_IP_META_KEY: str | None = env.str("RATELIMIT_IP_META_KEY", default="") or None
#: Failed admin logins allowed per IP address and per user name in ADMIN_LOGIN_RATE's window.
ADMIN_LOGIN_RATE: str = env.str("ADMIN_LOGIN_RATE", default="10/m")

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("fr", _("French"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# WhiteNoise serves STATIC_ROOT from the web process (decision 0073). Production swaps in the
# compressed, hashed-name storage (config.settings.prod); development and tests keep Django's
# plain storage so that nothing needs `collectstatic` before it runs.
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- Media: images uploaded by editors (decision 0077) -----------------------------------------
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
#: Where uploaded images go: "filesystem" (MEDIA_ROOT, served by the site under MEDIA_URL) or
#: "s3" (a bucket through django-storages, served by the bucket or its CDN).
MEDIA_STORAGE: str = env.str("MEDIA_STORAGE", default="filesystem").strip().lower()
if MEDIA_STORAGE == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("MEDIA_S3_BUCKET"),
            "region_name": env.str("MEDIA_S3_REGION", default="") or None,
            "endpoint_url": env.str("MEDIA_S3_ENDPOINT_URL", default="") or None,
            "custom_domain": env.str("MEDIA_S3_CUSTOM_DOMAIN", default="") or None,
            "location": env.str("MEDIA_S3_PREFIX", default=""),
            # Images go into public emails and pages: plain URLs, never expiring signed ones.
            "querystring_auth": False,
            "file_overwrite": False,
            "default_acl": None,
            "object_parameters": {"CacheControl": "public, max-age=31536000, immutable"},
        },
    }
elif MEDIA_STORAGE != "filesystem":
    raise ImproperlyConfigured(
        f"MEDIA_STORAGE must be 'filesystem' or 's3', not {MEDIA_STORAGE!r}."
    )
#: Largest image an editor may upload, in megabytes.
IMAGE_UPLOAD_MAX_MB: int = env.int("IMAGE_UPLOAD_MAX_MB", default=10)
#: Uploaded images wider than this many pixels are scaled down to it.
IMAGE_MAX_WIDTH: int = env.int("IMAGE_MAX_WIDTH", default=1600)
# django-markdownx: the preview is our own rendering (sanitised with nh3), as readers get it.
MARKDOWNX_MARKDOWNIFY_FUNCTION = "publishing.editor.markdownify"
MARKDOWNX_SERVER_CALL_LATENCY = 500
MARKDOWNX_EDITOR_RESIZABLE = True
# Uploads go through publishing.editor's own view and publishing.images, not markdownx's form.

# --- Email ----------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Publishing <news@example.com>")
SERVER_EMAIL: str = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
EMAIL_BACKEND: str = env.str("EMAIL_BACKEND", default="channels.mail.LedgerEmailBackend")
EMAIL_OUTBOX_DIR = Path(env.str("EMAIL_OUTBOX_DIR", default=str(VAR_DIR / "outbox")))
EMAIL_HOST: str = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT: int = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER: str = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD: str = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS: bool = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT: int = env.int("EMAIL_TIMEOUT", default=30)

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL: str = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT: str = env.str("LOG_FORMAT", default="json")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "config.logging.RequestIdFilter"},
        "redact": {"()": "config.logging.RedactingFilter"},
    },
    "formatters": {
        "json": {
            "()": "config.logging.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
        },
        "text": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"},
    },
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": LOG_FORMAT,
            "filters": ["request_id", "redact"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "django_q": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exceptions.problem_exception_handler",
    # API keys (Authorization: Bearer), then staff sessions for the browsable API (with CSRF).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.api.authentication.ApiKeyAuthentication",
        "config.api.authentication.StaffSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_THROTTLE_CLASSES": [
        "config.api.throttles.KeyRateThrottle",
        "config.api.throttles.IPRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "api_key": env.str("API_RATE_PER_KEY", default="1200/min"),
        "api_ip": env.str("API_RATE_PER_IP", default="600/min"),
    },
    "DEFAULT_PAGINATION_CLASS": "config.api.pagination.StandardPagination",
    "DEFAULT_FILTER_BACKENDS": ["config.api.filters.QueryFilterBackend"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}
#: How long an Idempotency-Key's answer is kept, and how long its in-flight lock may live.
IDEMPOTENCY_TTL: int = env.int("IDEMPOTENCY_TTL", default=86_400)
IDEMPOTENCY_LOCK_TTL: int = env.int("IDEMPOTENCY_LOCK_TTL", default=60)
# Browsers may send the API's own request headers, and read its answers' ones.
CORS_ALLOW_HEADERS = [
    *default_cors_headers,
    "idempotency-key",
    "if-match",
    "if-none-match",
    "if-modified-since",
]
CORS_EXPOSE_HEADERS = ["ETag", "Last-Modified", "Location", "Retry-After", "Idempotent-Replayed"]
#: An API key's last use is written at most once per this many seconds (not on every request).
API_KEY_LAST_USED_INTERVAL: int = env.int("API_KEY_LAST_USED_INTERVAL", default=60)
# The API toolkit (config.api) takes API keys from the app that owns them by dotted path, so
# that it imports no app (config.api.keys, decision 0069): the model, the function checking a
# key, the one reading a key's visible prefix and the one naming its cached snapshot.
API_KEY_MODEL: str = "publishing.ApiKey"
API_KEY_AUTHENTICATE: str = "publishing.api_keys.authenticate_key"
API_KEY_PREFIX_OF: str = "publishing.api_keys.prefix_of"
API_KEY_SNAPSHOT_CACHE_KEY: str = "publishing.api_keys.snapshot_cache_key"
SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Publishing API",
    "DESCRIPTION": (
        "Publications, subscribers, channels and deliveries. Authenticate with an API key "
        "(`Authorization: Bearer pk_...`, created in the admin or with `manage.py "
        "create_api_key`); each operation names the scope it needs. Errors are RFC 9457 "
        "problem details. POSTs accept `Idempotency-Key`; reads send ETag and writes honour "
        "If-Match. See docs/api.md."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files are served by us, not fetched from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "DeliveryStatusEnum": "channels.models.Delivery.Status",
        "PublicationStatusEnum": "publishing.models.Publication.Status",
        "SubscriberStatusEnum": "subscribers.models.Subscriber.Status",
        "DispatchStatusEnum": "publishing.models.Dispatch.Status",
        "LanguageEnum": "config.settings.base.LANGUAGES",
    },
}

# --- Task queue (django-q2) -----------------------------------------------------------------
# The delivery ledger, not the queue, is the truth: see docs/decisions/0005-task-queue.md.
Q_BROKER: str = env.str("Q_BROKER", default="orm")
Q_CLUSTER: dict[str, Any] = {
    "name": "publishing",
    "workers": env.int("Q_WORKERS", default=2),
    # A task running longer than `timeout` is killed; `retry` must exceed it so that a task is
    # never handed out again while its first run is still going.
    "timeout": env.int("Q_TIMEOUT", default=120),
    "retry": env.int("Q_RETRY", default=180),
    # django-q2's default of 0 retries a poisoned task forever.
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=3),
    "catch_up": False,
    "ack_failures": True,
    "save_limit": 500,
    "poll": 0.2,
    "label": "Task queue",
    "broker_class": "channels.broker.HeartbeatORM",
    "orm": "default",
}
if Q_BROKER == "redis":
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["broker_class"] = "channels.broker.HeartbeatRedis"
    Q_CLUSTER["redis"] = env.str("Q_REDIS_URL")
#: On PostgreSQL the pusher waits for a new task's NOTIFY at most this long, then polls the
#: queue anyway (a task whose lock expired); other databases poll every Q_CLUSTER "poll".
Q_NOTIFY_WAIT_SECONDS: float = env.float("Q_NOTIFY_WAIT_SECONDS", default=1.0)
#: /readyz counts a worker as alive when its heartbeat is at most this many seconds old.
WORKER_HEARTBEAT_MAX_AGE: int = env.int("WORKER_HEARTBEAT_MAX_AGE", default=60)
#: How often, at most, a worker writes its heartbeat row.
WORKER_HEARTBEAT_INTERVAL: int = env.int("WORKER_HEARTBEAT_INTERVAL", default=15)

# --- Publishing -----------------------------------------------------------------------------

# --- Subscribers ----------------------------------------------------------------------------
#: Days a double opt-in confirmation link stays valid.
SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS: int = env.int(
    "SUBSCRIBERS_CONFIRMATION_MAX_AGE_DAYS", default=7
)
#: Confirmation and "already subscribed" emails one address receives at most per 24 hours.
SUBSCRIBERS_SIGNUP_EMAILS_PER_DAY: int = env.int("SUBSCRIBERS_SIGNUP_EMAILS_PER_DAY", default=3)
#: Sign-ups (page and API together) allowed per client IP address, django-ratelimit syntax.
SUBSCRIBERS_SIGNUP_RATE_IP: str = env.str("SUBSCRIBERS_SIGNUP_RATE_IP", default="20/h")
#: Sign-ups naming one address, from anywhere, allowed per period.
SUBSCRIBERS_SIGNUP_RATE_EMAIL: str = env.str("SUBSCRIBERS_SIGNUP_RATE_EMAIL", default="5/h")
#: Inbound address for the mailto: part of List-Unsubscribe; empty leaves only the https URL.
UNSUBSCRIBE_MAILTO: str = env.str("UNSUBSCRIBE_MAILTO", default="")
#: Rows per batch (one COPY and one INSERT ... SELECT) when importing subscribers.
SUBSCRIBERS_IMPORT_BATCH_SIZE: int = env.int("SUBSCRIBERS_IMPORT_BATCH_SIZE", default=10_000)
#: Threads (each with its own PostgreSQL connection) writing an import's batches in parallel.
SUBSCRIBERS_IMPORT_WORKERS: int = env.int("SUBSCRIBERS_IMPORT_WORKERS", default=2)

# --- Channels and delivery ------------------------------------------------------------------
#: Fernet keys (comma-separated, newest first) encrypting channel secrets at rest.
FIELD_ENCRYPTION_KEYS: list[str] = env.list("FIELD_ENCRYPTION_KEYS", default=[])
#: Times a delivery is tried before it is dead (rate-limited answers do not count).
DELIVERY_MAX_ATTEMPTS: int = env.int("DELIVERY_MAX_ATTEMPTS", default=8)
#: Exponential backoff with full jitter: a random wait up to min(CAP, BASE * 2^(attempt-1)).
DELIVERY_BACKOFF_BASE_SECONDS: float = env.float("DELIVERY_BACKOFF_BASE_SECONDS", default=30.0)
DELIVERY_BACKOFF_CAP_SECONDS: float = env.float("DELIVERY_BACKOFF_CAP_SECONDS", default=3600.0)
#: How long a claimed batch is reserved for its worker; must exceed Q_TIMEOUT (decision 0033).
DELIVERY_LEASE_SECONDS: int = env.int("DELIVERY_LEASE_SECONDS", default=Q_CLUSTER["timeout"] + 30)
#: Batches of one channel running at once, each continuing itself while work remains.
DELIVERY_CHANNEL_CONCURRENCY: int = env.int("DELIVERY_CHANNEL_CONCURRENCY", default=4)
#: One send_batch task keeps sending batches of its channel for up to this many seconds
#: (then it enqueues its successor); at most a quarter of Q_TIMEOUT (channels.E004).
DELIVERY_TASK_SECONDS: float = env.float(
    "DELIVERY_TASK_SECONDS", default=min(30.0, Q_CLUSTER["timeout"] / 4)
)
#: A rate-limited channel claims at most this many seconds of sending per batch.
DELIVERY_RATE_BATCH_SECONDS: float = env.float("DELIVERY_RATE_BATCH_SECONDS", default=10.0)
#: A rate-limited batch is handed to the backend in slices of this many seconds of sending
#: (0: one message at a time, the strictest pacing; a slice is the largest burst).
DELIVERY_RATE_SLICE_SECONDS: float = env.float("DELIVERY_RATE_SLICE_SECONDS", default=0.0)
#: Consecutive transient failures that open a channel's circuit, and how long it stays open.
DELIVERY_CIRCUIT_THRESHOLD: int = env.int("DELIVERY_CIRCUIT_THRESHOLD", default=5)
DELIVERY_CIRCUIT_COOLDOWN_SECONDS: int = env.int("DELIVERY_CIRCUIT_COOLDOWN_SECONDS", default=60)
#: Size of the trial batch sent when the cooldown is over (half-open).
DELIVERY_CIRCUIT_TRIAL_SIZE: int = env.int("DELIVERY_CIRCUIT_TRIAL_SIZE", default=10)
#: The sweeper enqueues batches for due deliveries nobody has claimed for this long, and
#: re-plans dispatches still planning after it.
DELIVERY_SWEEP_STALE_SECONDS: int = env.int("DELIVERY_SWEEP_STALE_SECONDS", default=30)
#: A worker's claim starts after the rows its last full batch of the channel took (decision
#: 0092) and goes back to the queue's start at least this often (site mail and rows re-queued
#: with their old time wait at most this long behind a long send); 0: always from the start.
DELIVERY_CLAIM_RESCAN_SECONDS: float = env.float("DELIVERY_CLAIM_RESCAN_SECONDS", default=2.0)
#: How often a worker looks for retries that have become due and enqueues their batches
#: (one indexed query per cluster; 0 leaves them to the sweeper).
DELIVERY_WAKE_SECONDS: float = env.float("DELIVERY_WAKE_SECONDS", default=1.0)
#: Domain of the Message-ID of every bulk email (default: SITE_URL's host).
DELIVERY_MESSAGE_ID_DOMAIN: str = env.str("DELIVERY_MESSAGE_ID_DOMAIN", default="")
#: Where the sent journal lives (decision 0039): redis:// (shared by every host), file:///dir
#: (shared by one host's processes), locmem:// (one process) or off. Default: REDIS_URL when
#: set, else a folder under VAR_DIR.
DELIVERY_JOURNAL_URL: str = env.str(
    "DELIVERY_JOURNAL_URL", default=REDIS_URL or f"file://{VAR_DIR / 'delivery-journal'}"
)
#: How long a journal entry outlives a worker that never recorded its batch; must exceed
#: DELIVERY_LEASE_SECONDS (entries are deleted as soon as their batch is recorded).
DELIVERY_JOURNAL_TTL_SECONDS: int = env.int("DELIVERY_JOURNAL_TTL_SECONDS", default=86_400)
# --- Events to webhook endpoints (decision 0084) ----------------------------------------------
#: The waits, in seconds, before each retry of an event that an endpoint did not take (2xx):
#: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, 14 h, 14 h, 16 h: eleven attempts over about three
#: days, then the delivery is dead. A Retry-After longer than the wait is honoured.
EVENT_RETRY_SCHEDULE_SECONDS: list[int] = [
    int(seconds)
    for seconds in env.list(
        "EVENT_RETRY_SCHEDULE_SECONDS",
        default=["5", "300", "1800", "7200", "18000", "36000", "36000", "50400", "50400", "57600"],
    )
]
#: An endpoint whose every attempt has failed for this many days is disabled, its owner told.
EVENT_ENDPOINT_DISABLE_AFTER_DAYS: float = env.float(
    "EVENT_ENDPOINT_DISABLE_AFTER_DAYS", default=5.0
)
#: While messages wait to be sent, recorded events wait too, at most this long, before the
#: relay turns them into deliveries: a send keeps the machine's work (decision 0084). 0: never.
EVENT_RELAY_MAX_WAIT_SECONDS: float = env.float("EVENT_RELAY_MAX_WAIT_SECONDS", default=60.0)
#: Events older than this are deleted by the sweeper with their deliveries to endpoints and
#: their attempts (0: keep every event). Longer than the retry schedule (about three days)
#: and than the days after which a failing endpoint is disabled; a deleted event can no
#: longer be listed or replayed.
EVENT_RETENTION_DAYS: float = env.float("EVENT_RETENTION_DAYS", default=30.0)
#: After a secret rotation, deliveries are signed with the old secret too for this long.
EVENT_SECRET_OVERLAP_HOURS: float = env.float("EVENT_SECRET_OVERLAP_HOURS", default=24.0)
#: Hosts (names or addresses) a channel's URL may reach although they are not public: for
#: development and tests only, production refuses it (decision 0071, config/outbound.py).
OUTBOUND_ALLOWED_HOSTS: list[str] = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])
#: /metrics answers a request carrying "Authorization: Bearer <METRICS_TOKEN>" (empty: none)...
METRICS_TOKEN: str = env.str("METRICS_TOKEN", default="")
#: ... or coming from one of these addresses or CIDR networks (comma-separated; empty: none).
#: With neither set, /metrics answers 404.
METRICS_ALLOWED_IPS: list[str] = env.list("METRICS_ALLOWED_IPS", default=[])
#: SNS topics whose SES bounce and complaint notifications /hooks/ses/ accepts (comma-separated
#: ARNs); empty: the endpoint refuses every message (decision 0043).
SES_FEEDBACK_TOPIC_ARNS: list[str] = env.list("SES_FEEDBACK_TOPIC_ARNS", default=[])
#: Regular expression that the host[:port] of an SNS SigningCertURL or SubscribeURL must match
#: in full (the URL must be https too). Only tests point it elsewhere.
SES_FEEDBACK_CERT_HOST_PATTERN: str = env.str(
    "SES_FEEDBACK_CERT_HOST_PATTERN", default=r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?"
)
#: An SNS message older than this (by its Timestamp) is refused: the replay window.
SES_FEEDBACK_MAX_AGE_SECONDS: int = env.int("SES_FEEDBACK_MAX_AGE_SECONDS", default=3600)
#: What channels.mail.LedgerEmailBackend uses while no email channel is enabled.
LEDGER_FALLBACK_EMAIL_BACKEND: str = env.str(
    "LEDGER_FALLBACK_EMAIL_BACKEND", default="channels.mail.OutboxEmailBackend"
)

# --- Digests (decisions 0025 and 0081) --------------------------------------------------------
#: The hour of the day, in each subscriber's own time zone (0-23), at which their digest goes
#: when they have neither chosen an hour nor enough reads for one to be learned.
DIGEST_HOUR: int = env.int("DIGEST_HOUR", default=8)
if not 0 <= DIGEST_HOUR <= 23:
    raise ImproperlyConfigured(f"DIGEST_HOUR must be an hour from 0 to 23, not {DIGEST_HOUR}.")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_digest_weekday = env.str("DIGEST_WEEKDAY", default="monday").strip().lower()
if _digest_weekday not in WEEKDAYS:
    raise ImproperlyConfigured(
        f"DIGEST_WEEKDAY must be a day name (monday ... sunday), not {_digest_weekday!r}."
    )
#: Day weekly digests go out, in each subscriber's time zone, as datetime.weekday() counts it
#: (0 is Monday).
DIGEST_WEEKDAY: int = WEEKDAYS.index(_digest_weekday)
#: Send-time optimisation: a subscriber who lets us pick their hour and has read at least this
#: many messages (a human open or click, one per message) in the last DIGEST_READ_DAYS days
#: gets their digest at the local hour they most often read.
DIGEST_READ_MIN: int = env.int("DIGEST_READ_MIN", default=5)
if DIGEST_READ_MIN < 1:
    raise ImproperlyConfigured(f"DIGEST_READ_MIN must be 1 or more, not {DIGEST_READ_MIN}.")
DIGEST_READ_DAYS: int = env.int("DIGEST_READ_DAYS", default=90)
if not 1 <= DIGEST_READ_DAYS <= 365:
    raise ImproperlyConfigured(
        f"DIGEST_READ_DAYS must be a number of days from 1 to 365, not {DIGEST_READ_DAYS}."
    )

# --- Engagement tracking (decision 0078, docs/analytics.md) ----------------------------------
#: A hit sooner than this after its message was sent is a machine's (security scanners and
#: prefetchers fetch as soon as the message lands).
ENGAGEMENT_TOO_SOON_SECONDS: int = env.int("ENGAGEMENT_TOO_SOON_SECONDS", default=5)
#: Clicks on this many different links of one message within ENGAGEMENT_BURST_SECONDS of each
#: other are a machine's (a scanner follows every link at once; a reader does not).
ENGAGEMENT_BURST_LINKS: int = env.int("ENGAGEMENT_BURST_LINKS", default=3)
ENGAGEMENT_BURST_SECONDS: int = env.int("ENGAGEMENT_BURST_SECONDS", default=2)
#: Networks of known link scanners (comma-separated CIDR): a click from one of them on a
#: message never opened is a machine's. Default: Microsoft Exchange Online Protection's
#: published ranges and Googlebot's.
ENGAGEMENT_SCANNER_NETWORKS: list[str] = env.list(
    "ENGAGEMENT_SCANNER_NETWORKS",
    default=[
        "40.92.0.0/15",
        "40.107.0.0/16",
        "52.100.0.0/14",
        "104.47.0.0/17",
        "2a01:111:f400::/48",
        "2a01:111:f403::/48",
        "66.249.64.0/19",
    ],
)
#: Where tracking requests append their events before they are moved into the database in bulk
#: (channels.tracking_buffer): a Redis URL. Default REDIS_URL; empty: each event is inserted
#: at once.
ENGAGEMENT_BUFFER_URL: str = env.str("ENGAGEMENT_BUFFER_URL", default=REDIS_URL)
#: Events are classified once they are this old, so a burst is judged whole.
ENGAGEMENT_SETTLE_SECONDS: int = env.int("ENGAGEMENT_SETTLE_SECONDS", default=30)
#: A recipient who unsubscribes within this many days of a publication's first send counts as
#: "unsubscribed after it" in its funnel.
ANALYTICS_UNSUBSCRIBE_DAYS: int = env.int("ANALYTICS_UNSUBSCRIBE_DAYS", default=7)

# Guardrails (decision 0085, docs/delivery.md). A dispatch whose email passes either rate, once
# at least GUARDRAIL_MIN_SAMPLE of its messages were sent or refused, is paused until a
# Publisher resumes or cancels it.
#: Hard bounces (refused at once, or an SES permanent bounce) over messages attempted.
GUARDRAIL_BOUNCE_RATE: float = env.float("GUARDRAIL_BOUNCE_RATE", default=0.05)
#: Complaints (SES complaint feedback) over messages sent.
GUARDRAIL_COMPLAINT_RATE: float = env.float("GUARDRAIL_COMPLAINT_RATE", default=0.001)
GUARDRAIL_MIN_SAMPLE: int = env.int("GUARDRAIL_MIN_SAMPLE", default=1000)
#: A check on a dispatch follows each bounce or complaint, at most once per this many seconds
#: per dispatch (the sweeper also checks every sending dispatch with any, every minute).
GUARDRAIL_CHECK_SECONDS: int = env.int("GUARDRAIL_CHECK_SECONDS", default=1)
#: An address with this many transient (soft) bounces within SOFT_BOUNCE_WINDOW_DAYS is
#: suppressed as bounced; 0: never.
SOFT_BOUNCE_LIMIT: int = env.int("SOFT_BOUNCE_LIMIT", default=3)
SOFT_BOUNCE_WINDOW_DAYS: int = env.int("SOFT_BOUNCE_WINDOW_DAYS", default=30)

# --- Deliverability doctor (decision 0083, docs/deliverability.md) ---------------------------
#: Name servers `manage.py doctor` asks (comma-separated IP or IP:port, [IPv6]:port); empty:
#: the system's resolver (/etc/resolv.conf).
DOCTOR_NAMESERVERS: list[str] = env.list("DOCTOR_NAMESERVERS", default=[])


def _check_nameserver(entry: str) -> str:
    import ipaddress

    host, port = entry, "53"
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port = rest.lstrip(":") or "53"
    elif entry.count(":") == 1:
        host, _, port = entry.partition(":")
    try:
        ipaddress.ip_address(host)
        if not 0 < int(port) < 65536:
            raise ValueError(port)
    except ValueError:
        raise ImproperlyConfigured(
            f"DOCTOR_NAMESERVERS: {entry!r} is not an IP address with an optional port from 1 "
            "to 65535 (192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53)."
        ) from None
    return entry


DOCTOR_NAMESERVERS = [_check_nameserver(entry.strip()) for entry in DOCTOR_NAMESERVERS]
#: Seconds the doctor waits for each DNS answer.
DOCTOR_DNS_TIMEOUT: float = env.float("DOCTOR_DNS_TIMEOUT", default=5.0)
#: DKIM selectors the doctor requires at every sending domain (comma-separated); empty: SES's
#: Easy DKIM records, else any key found at common selectors.
DOCTOR_DKIM_SELECTORS: list[str] = env.list("DOCTOR_DKIM_SELECTORS", default=[])
#: The last 7 days' hard-bounce rate that warns and fails (2% and 5%: Amazon SES's advice and
#: review threshold), and the complaint rate (0.1% and 0.3%: Gmail's and Yahoo's guidelines).
DOCTOR_BOUNCE_WARNING_RATE: float = env.float("DOCTOR_BOUNCE_WARNING_RATE", default=0.02)
DOCTOR_BOUNCE_FAILURE_RATE: float = env.float("DOCTOR_BOUNCE_FAILURE_RATE", default=0.05)
DOCTOR_COMPLAINT_WARNING_RATE: float = env.float("DOCTOR_COMPLAINT_WARNING_RATE", default=0.001)
DOCTOR_COMPLAINT_FAILURE_RATE: float = env.float("DOCTOR_COMPLAINT_FAILURE_RATE", default=0.003)
for _kind in ("BOUNCE", "COMPLAINT"):
    _warning = globals()[f"DOCTOR_{_kind}_WARNING_RATE"]
    _failure = globals()[f"DOCTOR_{_kind}_FAILURE_RATE"]
    if not 0 < _warning <= _failure <= 1:
        raise ImproperlyConfigured(
            f"DOCTOR_{_kind}_WARNING_RATE ({_warning}) and DOCTOR_{_kind}_FAILURE_RATE "
            f"({_failure}) must be fractions with 0 < warning <= failure <= 1 (0.001 is 0.1%)."
        )

# --- Personalization (decision 0080, docs/personalization.md) -------------------------------
#: Days after which a reader's click or "more/less like this" counts half as much in their
#: profile (a quarter after twice as long...).
RANKING_HALF_LIFE_DAYS: float = env.float("RANKING_HALF_LIFE_DAYS", default=30.0)
if RANKING_HALF_LIFE_DAYS <= 0:
    raise ImproperlyConfigured(
        f"RANKING_HALF_LIFE_DAYS must be a number of days above 0, not {RANKING_HALF_LIFE_DAYS}."
    )
#: Share of a digest item's score given by how recent it is (0: interest only; 1: newest first).
RANKING_RECENCY_WEIGHT: float = env.float("RANKING_RECENCY_WEIGHT", default=0.1)
if not 0 <= RANKING_RECENCY_WEIGHT <= 1:
    raise ImproperlyConfigured(
        f"RANKING_RECENCY_WEIGHT must be between 0 and 1, not {RANKING_RECENCY_WEIGHT}."
    )
#: Days a "more like this" / "less like this" link works after its email was sent.
FEEDBACK_LINK_MAX_AGE_DAYS: int = env.int("FEEDBACK_LINK_MAX_AGE_DAYS", default=180)
if FEEDBACK_LINK_MAX_AGE_DAYS < 1:
    raise ImproperlyConfigured(
        f"FEEDBACK_LINK_MAX_AGE_DAYS must be at least 1 day, not {FEEDBACK_LINK_MAX_AGE_DAYS}."
    )
