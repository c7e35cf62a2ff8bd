"""RouterOps settings: one environment-driven module.

Defaults point at the services that `make services` starts for this checkout
(their ports are in var/services.env), so `make run` and `make test` need no
configuration. Every value can be overridden from the environment; a bad value
fails loudly at start-up rather than at the first request.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _read_services_env() -> dict[str, str]:
    path = BASE_DIR / "var" / "services.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


_SERVICES = _read_services_env()


def env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, _SERVICES.get(name, default))


def env_bool(name: str, default: bool) -> bool:
    raw = env(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


def database_from_url(url: str) -> dict:
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        raise ImproperlyConfigured(f"DATABASE_URL must be postgresql://…, got scheme {parsed.scheme!r}")
    if not parsed.path.strip("/"):
        raise ImproperlyConfigured("DATABASE_URL must name a database, e.g. postgresql://user@host:5432/routerops")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parsed.path.lstrip("/"),
        "USER": parsed.username or "",
        "PASSWORD": parsed.password or "",
        "HOST": parsed.hostname or "",
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60),
        "CONN_HEALTH_CHECKS": True,
    }


DEBUG = env_bool("DEBUG", False)
# A development default keeps the two commands configuration-free; production must set it.
SECRET_KEY = env("SECRET_KEY") or "routerops-dev-only-secret-key-change-me-in-production-0123456789"
if not DEBUG and env("ROUTEROPS_ENV") == "production" and SECRET_KEY.startswith("routerops-dev-only"):
    raise ImproperlyConfigured("SECRET_KEY must be set in production")
# HMAC key for API-key hashes; separate from SECRET_KEY so rotating one does not void the other.
API_KEY_PEPPER = env("API_KEY_PEPPER") or SECRET_KEY

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "router_ops.applications",
    "router_ops.rollouts",
    "router_ops.ingest",
    "router_ops.shadow",
    "router_ops.judging",
    "router_ops.rollups",
    "router_ops.alerts",
    "router_ops.review",
    "router_ops.privacy",
    "router_ops.dashboard",
    "segments",
]

MIDDLEWARE = [
    "router_ops.observability.RequestIdMiddleware",  # first: every log line below carries the request id
    "router_ops.api.middleware.RejectNulMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "router_ops.urls"
WSGI_APPLICATION = "router_ops.wsgi.application"
APPEND_SLASH = False  # API paths accept both forms explicitly (API.md)

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

DATABASES = {"default": database_from_url(env("DATABASE_URL", "postgresql://routerops@127.0.0.1:54329/routerops"))}
# Parallel test runs (several checkouts or helpers) each name their own test database.
if env("TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": env("TEST_DB_NAME")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:56379/0")
if not REDIS_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"REDIS_URL must be redis://…, got {REDIS_URL!r}")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "router_ops" / "dashboard" / "static"]

# Ingestion limits (API.md): bodies over the limit are answered 413.
INGEST_MAX_BODY_BYTES = env_int("INGEST_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
INGEST_MAX_BATCH = env_int("INGEST_MAX_BATCH", 1000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "router_ops.applications.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "router_ops.api.errors.exception_handler",
    # JSON only; uploads (eval sets) declare their own parsers.
    "DEFAULT_PARSER_CLASSES": ["router_ops.api.parsers.StrictJSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {
        # Per API key, per web process (a local-memory counter: no network hop on the hot path).
        "ingest": env("THROTTLE_INGEST", "600/min"),
        "read": env("THROTTLE_READ", "1200/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "RouterOps API",
    "DESCRIPTION": "Segment-aware shadow evaluation and canary rollouts for LLM model routers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "router_ops.api.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RouterVersionStatusEnum": "router_ops.rollouts.models.RouterVersion.STATUSES",
        "RolloutStatusEnum": "router_ops.rollouts.models.Rollout.STATUSES",
    },
}

# Alerts: email (console by default; SMTP from the environment) and links back to the dashboard.
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "routerops@localhost")
ROUTEROPS_BASE_URL = env("ROUTEROPS_BASE_URL", "http://127.0.0.1:8000")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Login throttling must count across all web processes, and must not depend on Redis being up.
    "security": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "routerops_cache"},
}
LOGIN_THROTTLE_CACHE = "security"

# /metrics: a bearer token for Prometheus (or an admin key / a superuser session).
METRICS_TOKEN = env("METRICS_TOKEN", "") or ""
# Provider base URLs a configured model may point at (no SSRF into the host's network).
PROVIDER_URL_ALLOWLIST = env(
    "PROVIDER_URL_ALLOWLIST",
    "127.0.0.1,localhost,api.openai.com,api.anthropic.com,api.mistral.ai,api.groq.com,api.together.xyz,"
    "api.fireworks.ai,openrouter.ai,generativelanguage.googleapis.com,*.openai.azure.com",
)

# Celery: Redis broker; JSON only (a root worker refuses pickle); tasks ack late so a
# killed worker's message is redelivered.
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fixup closes every database connection before and after every task
# unless this is set: a new PostgreSQL backend per task (it cost more CPU than the
# tasks themselves, see bench/pipeline.py). With it set, connections live by
# CONN_MAX_AGE, and router_ops/celery.py drops broken or expired ones after each task.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 100_000, minimum=0)
# Remote control (`celery inspect`/`control`, Flower) rides on a Redis pub/sub channel;
# with celery/kombu 5.7.0 a Redis outage noticed there first makes the worker exit
# ("Unrecoverable error: AttributeError ... 'hostname'"): in a minimal reproduction
# (same pins, Redis stopped under idle workers) 9 of 15 workers exited, 0 of 12 with it off. Off by default; CELERY_REMOTE_CONTROL=1 to
# turn it on (workers still run under scripts/respawn.py either way).
CELERY_WORKER_ENABLE_REMOTE_CONTROL = env_bool("CELERY_REMOTE_CONTROL", False)
# A message a killed worker held comes back after this; keep it ≥ SHADOW_LEASE_S.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300, minimum=10)}
# Judge fan-out has its own queue, so a burst of judging never starves shadow calls.
CELERY_TASK_ROUTES = {"judging.judge_pair": {"queue": "judge"}}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE: dict = {}  # filled in router_ops/celery.py, the one place periodic work is listed

# Shadow pipeline (router_ops/shadow): a job whose lease is older than SHADOW_LEASE_S is
# sent again (keep it above the longest possible call); shadow answers are capped at
# SHADOW_MAX_TOKENS (the RouteLLM replay needs ≥ 1125 for MT-Bench's longest answers).
SHADOW_LEASE_S = env_int("SHADOW_LEASE_S", 300, minimum=30)
SHADOW_MAX_TOKENS = env_int("SHADOW_MAX_TOKENS", 2048, minimum=16)
SHADOW_PROVIDER_ATTEMPTS = env_int("SHADOW_PROVIDER_ATTEMPTS", 4, minimum=1)
SHADOW_TASK_MAX_RETRIES = env_int("SHADOW_TASK_MAX_RETRIES", 3, minimum=0)
# Jobs per task message: a task runs its batch's provider calls together on one event loop.
SHADOW_TASK_BATCH = env_int("SHADOW_TASK_BATCH", 20, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "router_ops.observability.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "router_ops.observability.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": env("LOG_FORMAT", "json")}
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    # httpx logs every provider call at INFO: too chatty for workers.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"}},
}

# Static files are served by WhiteNoise straight from the app folders (no collectstatic step needed).
WHITENOISE_USE_FINDERS = True
