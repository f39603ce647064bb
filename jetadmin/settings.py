"""jetadmin settings, read from the environment with django-environ.

Two deployments, one code path (README, "Architecture"):

* **Embedded default** — nothing set: SQLite in WAL mode under ``JETADMIN_DATA_DIR``, Celery on the
  ``memory://`` broker consumed by a worker thread inside the server process, the in-memory channel
  layer. One process, nothing to install but Python.
* **Distributed** — ``DATABASE_URL`` (PostgreSQL, psycopg 3) and ``REDIS_URL`` set: Redis is the Celery
  broker and the channel layer; ``celery worker`` and ``celery beat`` run as their own processes.
"""

from __future__ import annotations

import base64
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DATA_DIR = Path(env.str("JETADMIN_DATA_DIR", default=str(BASE_DIR / "var")))


def _local_secret(name: str, make: Any = None) -> str:
    """A secret generated once and kept in the data dir (embedded default only)."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / name
    if not path.exists():
        path.write_text(make() if make else secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret("secret_key")
# Secrets at rest (jetadmin/crypto.py): Fernet keys, the first encrypts, all decrypt. Unset: a key is
# generated once into the data dir — fine for one machine; set the variable when processes run apart.
JETADMIN_ENCRYPTION_KEYS = env.list("JETADMIN_ENCRYPTION_KEYS", default=[])
JETADMIN_ENCRYPTION_KEY_FILE = None if JETADMIN_ENCRYPTION_KEYS else str(DATA_DIR / "encryption_key")
if not JETADMIN_ENCRYPTION_KEYS:
    JETADMIN_ENCRYPTION_KEYS = [
        _local_secret("encryption_key", lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    ]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_htmx",
    "jetadmin",
    "apps.tenancy",
    "apps.workflows",
    "apps.triggers",
    "apps.datasources",
    "apps.queries",
    "apps.widgets",
    "apps.dashboards",
]

MIDDLEWARE = [
    "jetadmin.metrics.MetricsMiddleware",  # outermost: counts every answer, refusals included
    "jetadmin.logs.RequestContextMiddleware",  # a request id (and tenant) on every log line
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jetadmin.middleware.RequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "jetadmin.urls"
WSGI_APPLICATION = "jetadmin.wsgi.application"
ASGI_APPLICATION = "jetadmin.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.tenancy.context_processors.tenancy",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------------
# Bounded connections (README "Sizing"). On PostgreSQL every process but a Celery worker holds a psycopg
# pool of at most JETADMIN_DB_POOL_SIZE connections: a burst of requests waits (up to
# JETADMIN_DB_POOL_TIMEOUT_S) for one instead of opening more, and a connection found broken at checkout
# is replaced (the pool recovers by itself after a database restart). A worker's prefork child runs one
# task at a time, so it keeps one persistent connection instead (jetadmin/celery.py switches that on
# at worker start): at most 2 per child, counting the lease renewer's thread.
JETADMIN_DB_POOL_SIZE = env.int("JETADMIN_DB_POOL_SIZE", default=10)
# Threads per web process running Django's views (jetadmin/asgi.py); a sync execute waiting for its run
# holds one (not a database connection), so there are more threads than pooled connections.
JETADMIN_WEB_THREADS = env.int("JETADMIN_WEB_THREADS", default=32)
JETADMIN_DB_POOL_TIMEOUT_S = env.float("JETADMIN_DB_POOL_TIMEOUT_S", default=30.0)
JETADMIN_WORKER_CONN_MAX_AGE = env.int("JETADMIN_WORKER_CONN_MAX_AGE", default=600)
# Worker transactions commit without waiting for the WAL flush (half the cost of a hop per node): if
# PostgreSQL itself crashes, the last fraction of a second of node claims and results may be lost, and
# those nodes run again, as after a worker crash. Runs started through the API commit durably.
JETADMIN_WORKER_SYNCHRONOUS_COMMIT = env.bool("JETADMIN_WORKER_SYNCHRONOUS_COMMIT", default=False)
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"]["ENGINE"] = "jetadmin.db"  # Django's, with a pool that fails fast when down
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_CONN_HEALTH_CHECKS", default=True)
        # Statements run again and again (the engine's claim and finish, the API's lookups) are prepared
        # once per connection and not planned again: server-side binding, prepared after 5 uses. Set
        # JETADMIN_DB_PREPARE_THRESHOLD=0 behind a PgBouncer older than 1.21 (no prepared statements).
        if env.int("JETADMIN_DB_PREPARE_THRESHOLD", default=5):
            DATABASES["default"].setdefault("OPTIONS", {}).update(
                server_side_binding=True,
                prepare_threshold=env.int("JETADMIN_DB_PREPARE_THRESHOLD", default=5),
            )
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": JETADMIN_DB_POOL_SIZE,
            "timeout": JETADMIN_DB_POOL_TIMEOUT_S,
            "max_idle": 300,
        }
else:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "jetadmin.sqlite3",
            # A server, a worker and a scheduler share the file: WAL + immediate transactions,
            # or writers collide with "database is locked".
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            "TEST": {"NAME": str(DATA_DIR / "test_jetadmin.sqlite3")},
        }
    }
EMBEDDED = not env.str("REDIS_URL", default="")
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "jetadmin.db"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "tenancy.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

if env.list("JETADMIN_PASSWORD_HASHERS", default=[]):
    # Tests use a fast hasher, and hand the same list to the server processes they start.
    PASSWORD_HASHERS = env.list("JETADMIN_PASSWORD_HASHERS")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# The embedded default serves static files straight from the source folders (no collectstatic step).
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# Django's ASGI handler notes that file responses (static files, downloads) are iterated in a thread.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

# --- request limits ---------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("JETADMIN_MAX_BODY_BYTES", default=2 * 1024 * 1024)

# --- security (production values come from the environment; see README "Deploying") ---------------
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG and not EMBEDDED)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG and not EMBEDDED)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- email ----------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="jetadmin <noreply@localhost>")
JETADMIN_PUBLIC_URL = env.str("JETADMIN_PUBLIC_URL", default="http://127.0.0.1:8000")

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.tenancy.authentication.TokenAuthentication",
        "apps.tenancy.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["jetadmin.api.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "jetadmin.api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "jetadmin.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": "jetadmin.api.metadata.Metadata",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {"login": env.str("JETADMIN_LOGIN_RATE", default="30/min")},
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "jetadmin API",
    "DESCRIPTION": (
        "Datasources, queries, workflows, widgets and dashboards. "
        'Every error is {"error": {"code", "message", "details"}}.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",  # vendored, pinned assets: the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

JETADMIN_NODE_MODULES = env.list("JETADMIN_NODE_MODULES", default=[])
# SQLite datasources may only open files under this directory (apps/datasources/connectors/sqlite.py).
# Outbound safety (jetadmin/outbound.py): CIDRs that user-directed requests may reach although they are
# loopback/private. Empty in production; `make run` and the tests that need local servers set it.
JETADMIN_OUTBOUND_ALLOW = env.list("JETADMIN_OUTBOUND_ALLOW", default=[])
JETADMIN_SQLITE_ROOT = env.str("JETADMIN_SQLITE_ROOT", default=str(DATA_DIR / "datasources"))
JETADMIN_INLINE_BUDGET_S = env.float("JETADMIN_INLINE_BUDGET_S", default=2.0)
# The longest a sync execute holds its request (and a web worker) waiting for the run; the request's own
# timeout_s is capped by it. A run that is still going is answered with timed_out: true, not canceled.
JETADMIN_MAX_SYNC_WAIT_S = env.float("JETADMIN_MAX_SYNC_WAIT_S", default=300.0)
# A node output larger than this (JSON bytes) is kept in the blob store, its row keeping a reference with
# a preview (apps/workflows/blobs.py). The store is the database, or S3-compatible storage when a bucket
# is set (JETADMIN_BLOB_S3_ENDPOINT for MinIO and the like; credentials as boto3 reads them).
JETADMIN_BLOB_THRESHOLD_BYTES = env.int("JETADMIN_BLOB_THRESHOLD_BYTES", default=256 * 1024)
JETADMIN_BLOB_S3_BUCKET = env.str("JETADMIN_BLOB_S3_BUCKET", default="")
JETADMIN_BLOB_S3_ENDPOINT = env.str("JETADMIN_BLOB_S3_ENDPOINT", default="")
JETADMIN_BLOB_S3_PREFIX = env.str("JETADMIN_BLOB_S3_PREFIX", default="jetadmin/blobs/")
# Durable execution: a claim's lease (renewed every third of it while a node runs), how long a queued
# node may wait for its message before the reconciler presumes it lost and sends another, and how
# many lost leases (dead or frozen workers) a node survives before it fails with "worker_lost".
JETADMIN_LEASE_S = env.float("JETADMIN_LEASE_S", default=30.0)
JETADMIN_REQUEUE_AFTER_S = env.float("JETADMIN_REQUEUE_AFTER_S", default=60.0)
# Delays and retry backoffs due within this many seconds also get a broker timer (an ETA message) that
# runs the node on time; later ones (and lost timers) are woken by the reconciler's pass.
JETADMIN_TIMER_MAX_S = env.float("JETADMIN_TIMER_MAX_S", default=300.0)
JETADMIN_MAX_LEASE_LOSSES = env.int("JETADMIN_MAX_LEASE_LOSSES", default=5)
JETADMIN_MAX_SUBWORKFLOW_DEPTH = env.int("JETADMIN_MAX_SUBWORKFLOW_DEPTH", default=5)
# Fair shares of saturated workers (apps/workflows/engine/dispatch.py): nodes go to the broker while
# fewer than this many messages wait there; beyond it they wait in the database and are let in by weight.
JETADMIN_DISPATCH_BACKLOG = env.int("JETADMIN_DISPATCH_BACKLOG", default=16)
# Opt-in hard limits (apps/workflows/engine/fairness.py); a tenant's own fields override these; 0 = none.
JETADMIN_TENANT_MAX_RUNNING_NODES = env.int("JETADMIN_TENANT_MAX_RUNNING_NODES", default=0)
JETADMIN_TENANT_MAX_STARTS_PER_MINUTE = env.int("JETADMIN_TENANT_MAX_STARTS_PER_MINUTE", default=0)
JETADMIN_TOKEN_TTL_HOURS = env.int("JETADMIN_TOKEN_TTL_HOURS", default=24 * 14)
JETADMIN_INVITE_TTL_HOURS = env.int("JETADMIN_INVITE_TTL_HOURS", default=24 * 7)

# --- Celery ----------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING below (LOG_FORMAT), like the web
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
if EMBEDDED:
    # In-process queues whose consumer is woken by each publish (jetadmin/membroker.py); it polls at
    # this interval only while every worker slot is busy.
    CELERY_BROKER_TRANSPORT = "jetadmin.membroker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"polling_interval": 0.002}
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * CELERY_TASK_TIME_LIMIT + 60),
    }
    # Redis redelivers an unacknowledged message after visibility_timeout: shorter than a task may run,
    # and a healthy long task is delivered twice. Refuse to start rather than run everything twice.
    if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] < 2 * CELERY_TASK_TIME_LIMIT:
        raise ImproperlyConfigured(
            f"CELERY_VISIBILITY_TIMEOUT ({CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']} s) must be "
            f"at least twice CELERY_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT} s), or long tasks are "
            "redelivered while they still run."
        )
# Periodic tasks: beat in the distributed deployment, a ticker thread in the embedded one.
CELERY_BEAT_SCHEDULE = {
    "workflows-reconcile": {
        "task": "workflows.reconcile",
        "schedule": env.float("JETADMIN_WAKE_INTERVAL_S", 1.0),
    },
    "triggers-fire-due-schedules": {
        "task": "triggers.fire_due_schedules",
        "schedule": env.float("JETADMIN_SCHEDULE_TICK_S", 5.0),
    },
    "workflows-prune": {
        "task": "workflows.prune",
        "schedule": env.float("JETADMIN_RETENTION_TICK_S", 600.0),
    },
}
# Retention (apps/workflows/retention.py): a tenant's own settings override these; 0 = no limit.
JETADMIN_RETENTION_DAYS = env.int("JETADMIN_RETENTION_DAYS", default=30)
JETADMIN_RETENTION_FAILED_DAYS = env.int("JETADMIN_RETENTION_FAILED_DAYS", default=90)
JETADMIN_RETENTION_MAX_RUNS = env.int("JETADMIN_RETENTION_MAX_RUNS", default=0)  # per workflow
JETADMIN_RETENTION_BATCH = env.int("JETADMIN_RETENTION_BATCH", default=500)  # runs per transaction
JETADMIN_RETENTION_PAUSE_S = env.float("JETADMIN_RETENTION_PAUSE_S", default=0.05)  # between batches
JETADMIN_RETENTION_BUDGET_S = env.float("JETADMIN_RETENTION_BUDGET_S", default=300.0)  # per tick
JETADMIN_WEBHOOK_RATE = env.str("JETADMIN_WEBHOOK_RATE", default="60/min")
JETADMIN_EMBEDDED_WORKER_CONCURRENCY = env.int("JETADMIN_EMBEDDED_WORKER_CONCURRENCY", default=4)

# --- cache (rate limits, short-lived counters): shared through Redis when there is one -------------
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Channels --------------------------------------------------------------------------------------
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 1000}}
    }
# (capacity: messages a channel holds before the layer drops more. One channel per web process carries
# every watched run's events (jetadmin/consumers.Hub); what is dropped anyway is refilled from the journal.)

# Websocket limits (jetadmin/consumers.py): the largest frame accepted, and a per-connection token bucket.
JETADMIN_WS_MAX_FRAME = env.int("JETADMIN_WS_MAX_FRAME", default=64 * 1024)
JETADMIN_WS_RATE = env.float("JETADMIN_WS_RATE", default=20.0)
JETADMIN_WS_BURST = env.int("JETADMIN_WS_BURST", default=60)
# A process publishes run events at most this often (a burst shares its channel-layer sends).
JETADMIN_WS_PUBLISH_INTERVAL_S = env.float("JETADMIN_WS_PUBLISH_INTERVAL_S", default=0.01)
# Distributed: run events go to the web processes by Redis pub/sub (one PUBLISH per run and flush)
# instead of a channel-layer group_send; off = through the channel layer, like widget events.
JETADMIN_WS_PUBSUB = env.bool("JETADMIN_WS_PUBSUB", default=True)
# Widgets: viewers of one widget with the same parameters share a run in flight or ended this recently;
# widget_refresh forces a new run at most this often per widget and connection.
JETADMIN_WIDGET_REUSE_S = env.float("JETADMIN_WIDGET_REUSE_S", default=30.0)
JETADMIN_WIDGET_REFRESH_MIN_S = env.float("JETADMIN_WIDGET_REFRESH_MIN_S", default=2.0)
# The shortest refresh interval a dashboard may have (its widgets re-run at most this often).
JETADMIN_DASHBOARD_MIN_REFRESH_S = env.int("JETADMIN_DASHBOARD_MIN_REFRESH_S", default=5)

# --- logging -----------------------------------------------------------------------------------------
# LOG_FORMAT: "json" (one object per line with request id, tenant, run, node and attempt: jetadmin/logs.py)
# or "text"; JSON by default in the distributed deployment, text on the embedded default.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if EMBEDDED else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "jetadmin.logs.ContextFilter"}},
    "formatters": {
        "text": {"()": "jetadmin.logs.TextFormatter"},
        "json": {"()": "jetadmin.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One line per task received/succeeded drowns everything else at INFO.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        # httpx logs every URL it requests at INFO, query strings (API keys) included.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "mysql.connector": {"level": "WARNING"},  # three INFO lines per connection
    },
}

# --- metrics (jetadmin/metrics.py) ------------------------------------------------------------------------
# Processes of one host count into files here and GET /metrics adds them up; empty = this process only
# (the embedded default). Set before anything imports prometheus-client.
JETADMIN_METRICS_DIR = env.str("JETADMIN_METRICS_DIR", default="")
if JETADMIN_METRICS_DIR:
    Path(JETADMIN_METRICS_DIR).mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = JETADMIN_METRICS_DIR
# GET /metrics: "Authorization: Bearer <token>" with this token, or a staff member's session.
JETADMIN_METRICS_TOKEN = env.str("JETADMIN_METRICS_TOKEN", default="")
# A Celery worker serves its processes' metrics on this port too (containers that do not share a
# metrics directory with the web server); 0 = not served.
JETADMIN_METRICS_PORT = env.int("JETADMIN_METRICS_PORT", default=0)
