"""Django settings: read from the environment once, here, with development defaults."""

from pathlib import Path

import environ

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
    "users",
    "prompts",
    "sync",
]

MIDDLEWARE = [
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

CACHE_URL = env("CACHE_URL", default=REDIS_URL.rsplit("/", 1)[0] + "/1")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}}

# Celery -------------------------------------------------------------------------------------

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
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
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
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
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# How many provider calls one prompt worker holds in flight (thread pool size).
PROMPT_WORKER_CONCURRENCY = env.int("PROMPT_WORKER_CONCURRENCY", default=32)

# Dispatch (jobs) ----------------------------------------------------------------------------

# A record still WAITING or QUEUED this long after its last send is sent again by the sweeper.
JOBS_RESEND_AFTER_SECONDS = env.int("JOBS_RESEND_AFTER_SECONDS", default=120)
JOBS_MAX_SENDS = env.int("JOBS_MAX_SENDS", default=5)

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
    "DEFAULT_PAGINATION_CLASS": "common.api.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AI tasks API",
    "DESCRIPTION": "Submit AI work, get a task id at once, follow it to the result.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Two models have a `status` field; name both enums (prompts keeps the name it had).
    "ENUM_NAME_OVERRIDES": {
        "StatusEnum": "prompts.models.PromptRequest.Status",
        "DocumentStatusEnum": "sync.models.Document.Status",
    },
}

# Logging ------------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
