"""Django settings: read from the environment once, here, with development defaults."""

import sys
from pathlib import Path

import environ

from common.logs import logging_config
from jobs import queues

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")  # real environment variables win

# Core ---------------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)
# Without DATABASE_URL / REDIS_URL this is a local checkout on the embedded servers (see below).
USES_EMBEDDED_SERVERS = not env("DATABASE_URL", default="") or not (
    env("REDIS_URL", default="") or env("CELERY_BROKER_URL", default="")
)
# A local checkout gets a fixed development key; a deployment must be given one.
SECRET_KEY = env(
    "SECRET_KEY", default="dev-insecure-key-change-me" if DEBUG or USES_EMBEDDED_SERVERS else environ.Env.NOTSET
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS hardening: on by default for a deployment, off for a local checkout (plain http).
_DEPLOYED = not DEBUG and not USES_EMBEDDED_SERVERS
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=_DEPLOYED)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=3600 if _DEPLOYED else 0)
# Turn these two off if a subdomain is served over plain http (they are hard to take back).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_DEPLOYED)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=_DEPLOYED)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # behind a TLS-terminating proxy
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_DEPLOYED)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_DEPLOYED)
SECURE_REDIRECT_EXEMPT = [r"^api/v1/health/$"]  # load balancers probe over plain http

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "jobs",
    "ai",
    "users",
    "prompts",
    "notifications",
    "sync",
]

MIDDLEWARE = [
    "common.middleware.RequestIdMiddleware",  # first: every line of the request carries its id
    "common.middleware.DatabaseBusyMiddleware",  # no pooled connection in time: 503, not 500
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "users.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media")))

# Databases and Redis ------------------------------------------------------------------------
# Without DATABASE_URL / REDIS_URL the embedded servers under EMBEDDED_DIR are started (or
# found running) so every entry point (manage.py, celery, uvicorn, pytest) reaches the same ones.

EMBEDDED_DIR = Path(env("EMBEDDED_DIR", default=str(BASE_DIR / "var")))
if USES_EMBEDDED_SERVERS:
    from config import embedded

    _embedded = embedded.ensure_running(EMBEDDED_DIR, durable=env.bool("EMBEDDED_DURABLE", default=True))
    DATABASE_URL = env("DATABASE_URL", default=_embedded.database_url)
    REDIS_URL = env("REDIS_URL", default=_embedded.redis_url)
else:
    DATABASE_URL = env("DATABASE_URL")
    REDIS_URL = env("REDIS_URL", default=env("CELERY_BROKER_URL", default=""))

DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Parameters bound by the server, and statements a connection runs DB_PREPARE_THRESHOLD times
# prepared (parsed and planned once): the API's and the workers' statements repeat on every
# request and task. Empty turns preparing off, for a pooler in transaction mode that cannot keep
# prepared statements (PgBouncer before 1.21, or without max_prepared_statements).
_prepare_threshold = env("DB_PREPARE_THRESHOLD", default="5")
DATABASES["default"].setdefault("OPTIONS", {}).update(
    server_side_binding=True,
    prepare_threshold=int(_prepare_threshold) if _prepare_threshold.strip() else None,
)
# A pool of connections per process (psycopg_pool), on by default in the web: under ASGI each
# request runs on a thread of its own and Django's connections are per thread, so without it
# every request would open a connection. Workers keep one connection per thread instead
# (CONN_MAX_AGE). config/asgi.py sets DJANGO_ASGI; common/postgresql checks the connections.
DB_POOL = env.bool("DB_POOL", default=env.bool("DJANGO_ASGI", default=False))
if DB_POOL:
    DATABASES["default"]["ENGINE"] = "common.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # a connection goes back to the pool after each request
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),  # seconds a request waits for a connection
        "max_idle": 300,  # seconds an idle connection above min_size is kept
    }

CACHE_URL = env("CACHE_URL", default=REDIS_URL.rsplit("/", 1)[0] + "/1")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}

# Celery -------------------------------------------------------------------------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
# django-celery-results' backend, retrying a lost database connection (jobs/results.py): a
# store that fails inside a task's trace would otherwise leave its message unacknowledged.
CELERY_RESULT_BACKEND = "jobs.results:RetryingDatabaseBackend"
CELERY_RESULT_BACKEND_ALWAYS_RETRY = True
CELERY_RESULT_BACKEND_MAX_RETRIES = 20  # backoff up to 10 s a try: a minute on average, then it fails
CELERY_RESULT_EXTENDED = True
# One backend object per process, not per thread: it keeps no state of its own (the database
# connections under it are per thread anyway), and the web runs each request in a new thread,
# where building it again cost every send (about 0.3 ms).
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=3600)  # results kept an hour
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_QUEUES = queues.CELERY_QUEUES
CELERY_TASK_DEFAULT_QUEUE = queues.MAINTENANCE
# A message is acknowledged only after its task ran, and given back if the worker dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task whose pool child died (kill -9, out of memory) runs again after its default_retry_delay,
# counted as a retry: at most max_retries times, then FAILURE (jobs.worker_signals), never a loop.
# Requeueing alone (the line above) would run a task that kills its child again and again; it
# remains the fallback if the retry cannot be sent.
CELERY_TASK_RETRY_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Workers keep their database connections between tasks for CONN_MAX_AGE, checked before each
# task as Django checks them before each request (jobs/worker_signals.py); without this, Celery's
# Django fixup closes them around every task, and every task opens a new one.
CELERY_DB_REUSE_MAX = sys.maxsize
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=540)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_TRACK_STARTED = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis hands an unacknowledged message to another worker after this long; it must stay
    # above every hard time limit, countdown and retry delay, or running tasks run twice.
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # A worker empties its queues in the order given by -Q: high before normal before low.
    "queue_order_strategy": "priority",
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
CELERY_WORKER_SEND_TASK_EVENTS = True
# Celery's task-sent event costs the accepting request a Redis round trip and some CPU; the task
# records already say QUEUED. On, Flower also lists tasks that no worker has received yet.
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
# Celery reads this on every send, at its default here. A setting Django has is found at once;
# one it lacks is looked for under its old and new names in every source, about 15 µs of CPU
# each, on every accepted request.
CELERY_BROKER_POOL_ACQUIRE_TIMEOUT = None
# django-celery-beat's database scheduler behind a Redis lock: a second beat never sends twice.
CELERY_BEAT_SCHEDULER = "jobs.beat:LockedDatabaseScheduler"
BEAT_LOCK_SECONDS = env.int("BEAT_LOCK_SECONDS", default=30)
# How many provider calls one prompt worker holds in flight (thread pool size).
PROMPT_WORKER_CONCURRENCY = env.int("PROMPT_WORKER_CONCURRENCY", default=32)

# Dispatch (jobs) ----------------------------------------------------------------------------

# A record still WAITING or QUEUED this long after its last send is sent again by the sweeper.
JOBS_RESEND_AFTER_SECONDS = env.int("JOBS_RESEND_AFTER_SECONDS", default=120)
JOBS_MAX_SENDS = env.int("JOBS_MAX_SENDS", default=5)
# Workers beat this often (jobs/heartbeat.py, read by the sweeper and the dashboard); a worker
# silent for 3 beats is dead: its received and started tasks are resent, the dashboard drops it.
JOBS_WORKER_HEARTBEAT_SECONDS = env.float("JOBS_WORKER_HEARTBEAT_SECONDS", default=5)
# Hold each user's prompts to their tier's in-flight cap, released round robin between users.
FAIR_SHARE_ENABLED = env.bool("FAIR_SHARE_ENABLED", default=True)
# How long the staff endpoints wait for workers to answer (a dead worker must not hang the API).
JOBS_INSPECT_TIMEOUT_SECONDS = env.float("JOBS_INSPECT_TIMEOUT_SECONDS", default=1.0)
# Finished task records are kept this long, then deleted by the cleanup job.
JOBS_FAILED_KEEP_DAYS = env.int("JOBS_FAILED_KEEP_DAYS", default=30)
JOBS_SUCCEEDED_KEEP_DAYS = env.int("JOBS_SUCCEEDED_KEEP_DAYS", default=7)
# Task event streams (SSE): a comment this often keeps idle connections open through proxies;
# a stream is closed after TASK_EVENTS_MAX_SECONDS and the client reconnects with its last id.
TASK_EVENTS_KEEPALIVE_SECONDS = env.float("TASK_EVENTS_KEEPALIVE_SECONDS", default=15)
TASK_EVENTS_MAX_SECONDS = env.float("TASK_EVENTS_MAX_SECONDS", default=600)
# Cache keys without an expiry that nobody read for this long are removed every 6 hours.
CACHE_MAX_IDLE_DAYS = env.int("CACHE_MAX_IDLE_DAYS", default=7)

# AI provider --------------------------------------------------------------------------------

OPENAI_API_KEY = env("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env("OPENAI_BASE_URL", default="")
# "openai" (any OpenAI-compatible server) or "offline"; empty picks openai when a key or base
# URL is configured and offline otherwise, so the demo works without network.
AI_PROVIDER = env("AI_PROVIDER", default="") or ("openai" if OPENAI_API_KEY or OPENAI_BASE_URL else "offline")
AI_CHAT_MODELS = env.list("AI_CHAT_MODELS", default=["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"])
AI_DEFAULT_CHAT_MODEL = env("AI_DEFAULT_CHAT_MODEL", default=AI_CHAT_MODELS[0])
AI_TIMEOUT_SECONDS = env.float("AI_TIMEOUT_SECONDS", default=60.0)
AI_MAX_RETRIES = env.int("AI_MAX_RETRIES", default=3)
# Chat answers stream in; the growing text reaches the task's events at most this often.
AI_STREAM_CHAT = env.bool("AI_STREAM_CHAT", default=True)
AI_STREAM_PUBLISH_SECONDS = env.float("AI_STREAM_PUBLISH_SECONDS", default=0.25)
AI_IMAGE_MODEL = env("AI_IMAGE_MODEL", default="gpt-image-1")
AI_IMAGE_SIZES = env.list("AI_IMAGE_SIZES", default=["256x256", "512x512", "1024x1024"])
QUERY_CACHE_TTL_SECONDS = env.int("QUERY_CACHE_TTL_SECONDS", default=86400)
CONVERSATION_ARCHIVE_DAYS = env.int("CONVERSATION_ARCHIVE_DAYS", default=90)
AI_OFFLINE_IMAGE_STEP_SECONDS = env.float("AI_OFFLINE_IMAGE_STEP_SECONDS", default=0.3)
# Provider budgets (ai/budgets.py): calls and tokens per minute per provider and model, shared by
# all workers. AI_BUDGETS seeds the admin's rows, e.g. {"openai/gpt-4o-mini": {"rpm": 500, "tpm":
# 200000}, "openai/*": {"rpm": 100}}; the admin's edits win. A call waits in the worker up to
# AI_BUDGET_MAX_WAIT_SECONDS for room, else its task is sent again with a countdown of at most
# AI_BUDGET_MAX_COUNTDOWN_SECONDS (kept well under the broker's visibility timeout).
AI_BUDGETS = env.json("AI_BUDGETS", default={})
AI_BUDGET_MAX_WAIT_SECONDS = env.float("AI_BUDGET_MAX_WAIT_SECONDS", default=10)
AI_BUDGET_MAX_COUNTDOWN_SECONDS = env.float("AI_BUDGET_MAX_COUNTDOWN_SECONDS", default=65)
AI_BUDGET_REFRESH_SECONDS = env.float("AI_BUDGET_REFRESH_SECONDS", default=5)
# The window is a minute plus this, as a call reaches the provider a little after its grant.
AI_BUDGET_SAFETY_SECONDS = env.float("AI_BUDGET_SAFETY_SECONDS", default=1)
# Tokens reserved for an answer before its size is known (settled with the real count after).
AI_BUDGET_ANSWER_TOKENS = env.int("AI_BUDGET_ANSWER_TOKENS", default=500)

# Notifications ------------------------------------------------------------------------------

# Email: EMAIL_URL as django-environ reads it (smtp://user:pass@host:587/?tls=True); console in development.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="AI tasks <noreply@localhost>")
NOTIFICATIONS_SITE_NAME = env("NOTIFICATIONS_SITE_NAME", default="AI tasks")
# Events emailed to users who did not choose otherwise (they opt in or out per event).
NOTIFICATIONS_EMAIL_DEFAULT_EVENTS = env.list(
    "NOTIFICATIONS_EMAIL_DEFAULT_EVENTS", default=["system", "webhook.disabled"]
)
# System notifications and statistics go out this many users per batch, one batch at a time,
# and a batch waits while this many of its run's webhook deliveries are still open.
NOTIFICATIONS_BATCH_SIZE = env.int("NOTIFICATIONS_BATCH_SIZE", default=500)
NOTIFICATIONS_MAX_DELIVERIES_IN_FLIGHT = env.int("NOTIFICATIONS_MAX_DELIVERIES_IN_FLIGHT", default=2000)
NOTIFICATIONS_FAN_OUT_WAIT_SECONDS = env.float("NOTIFICATIONS_FAN_OUT_WAIT_SECONDS", default=10)
# Webhook URLs on loopback/private/link-local addresses are refused unless this is on (local
# development, tests). Cloud metadata addresses are refused even then.
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=False)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10)
WEBHOOKS_MAX_ATTEMPTS = env.int("WEBHOOKS_MAX_ATTEMPTS", default=8)
# Backoff: base x 2^(attempt-1) with jitter, capped; the cap is also kept under a quarter of the
# broker's visibility timeout, or Redis would hand a waiting retry to a second worker.
WEBHOOKS_RETRY_BASE_DELAY_SECONDS = env.float("WEBHOOKS_RETRY_BASE_DELAY_SECONDS", default=10)
WEBHOOKS_RETRY_MAX_DELAY_SECONDS = env.float("WEBHOOKS_RETRY_MAX_DELAY_SECONDS", default=300)
# An endpoint whose deliveries failed this many times in a row is disabled and its owner told.
WEBHOOKS_DISABLE_AFTER_FAILURES = env.int("WEBHOOKS_DISABLE_AFTER_FAILURES", default=10)
WEBHOOKS_MAX_ENDPOINTS_PER_USER = env.int("WEBHOOKS_MAX_ENDPOINTS_PER_USER", default=10)

# Documents (sync) ---------------------------------------------------------------------------

AI_EMBEDDING_MODEL = env("AI_EMBEDDING_MODEL", default="text-embedding-3-small")
# The width of the pgvector column, fixed when the sync migrations first run (changing it later
# needs a new column and a full re-sync); HNSW indexes take at most 2000 dimensions.
AI_EMBEDDING_DIMENSIONS = env.int("AI_EMBEDDING_DIMENSIONS", default=1536)
# Some servers reject `dimensions` for models with a fixed width; they then must match the above.
AI_EMBEDDING_SEND_DIMENSIONS = env.bool("AI_EMBEDDING_SEND_DIMENSIONS", default=True)
AI_EMBEDDING_BATCH_SIZE = env.int("AI_EMBEDDING_BATCH_SIZE", default=64)  # texts per provider call
DOCUMENT_CHUNK_CHARS = env.int("DOCUMENT_CHUNK_CHARS", default=800)
DOCUMENT_BATCH_MAX_ITEMS = env.int("DOCUMENT_BATCH_MAX_ITEMS", default=100)
DOCUMENT_SEARCH_DEFAULT_TOP_K = env.int("DOCUMENT_SEARCH_DEFAULT_TOP_K", default=5)
DOCUMENT_SEARCH_MAX_TOP_K = env.int("DOCUMENT_SEARCH_MAX_TOP_K", default=50)
SYNC_FULL_BATCH_SIZE = env.int("SYNC_FULL_BATCH_SIZE", default=50)
# One process_sync_queue run stops claiming after this long, well before the next run is due.
SYNC_QUEUE_TIME_BUDGET_SECONDS = env.int("SYNC_QUEUE_TIME_BUDGET_SECONDS", default=240)
# A claimed item not finished this long after its claim (worker died) is claimed again.
SYNC_QUEUE_CLAIM_TIMEOUT_SECONDS = env.int("SYNC_QUEUE_CLAIM_TIMEOUT_SECONDS", default=900)

# REST API -----------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "users.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["common.throttles.UserRate", "common.throttles.AnonRate"],
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

# Rates kept in the shared cache (Redis), on top of the daily limits.
API_USER_THROTTLE_RATE = env("API_USER_THROTTLE_RATE", default="3000/min")
API_ANON_THROTTLE_RATE = env("API_ANON_THROTTLE_RATE", default="120/min")
# A web process counts up to this many of a user's requests in Redis at once, while far more are
# left in the window (common/throttles.py); 1 counts each request in Redis.
API_THROTTLE_LEASE_MAX = env.int("API_THROTTLE_LEASE_MAX", default=16)
# Failed API-key authentications allowed per client address per minute, then 429.
AUTH_FAILURES_PER_MINUTE = env.int("AUTH_FAILURES_PER_MINUTE", default=30)
# Each web process keeps the API keys it looked up, dropped when PostgreSQL notifies a change
# to the key, its user or a tier (users/key_cache.py; one listening connection per process).
API_KEY_CACHE = env.bool("API_KEY_CACHE", default=True)

SPECTACULAR_SETTINGS = {
    "TITLE": "AI tasks API",
    "DESCRIPTION": "Submit AI work, get a task id at once, follow it to the result.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The task event stream is an async Django view, not a DRF one; this hook describes it.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "jobs.streams.schema_add_task_events"],
    # Several models have `status`/event fields; name each enum (prompts keeps the name it had).
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "prompts.models.PromptRequest.Status",
        "DocumentStatusEnum": "sync.models.Document.Status",
        "WebhookEventEnum": "notifications.events.WEBHOOK_EVENT_CHOICES",
        "NotificationEventEnum": "notifications.events.EMAIL_EVENT_CHOICES",
    },
}

# Benchmarks: mount bench/baseline_urls.py (a bare view bench_accept compares the API with).
BENCH_BASELINE_VIEWS = env.bool("BENCH_BASELINE_VIEWS", default=False)

# Logging ------------------------------------------------------------------------------------

# One JSON object per line in production (LOG_FORMAT=json, the default when DEBUG is off),
# readable text under `make run`; every line carries request_id, and in workers task_id and
# task_name (common/logs.py). Celery workers use this too (config/celery.py).
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = logging_config(log_format=LOG_FORMAT, level=LOG_LEVEL)
