"""Portal settings, part 1 of 4: the environment, Django, the database, Redis, Celery, sign-in, the
REST API and the audit trail (portal/settings/__init__.py lists the parts).


Embedded mode (the default): SQLite in WAL mode and a portal-managed redis-server under var/.
Services mode: DATABASE_URL (PostgreSQL) and REDIS_URL point at real services.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import dj_database_url

from portal.env import ConfigError, env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

PORTAL_ENV = env_choice("PORTAL_ENV", ("development", "production", "test"), "development")
PRODUCTION = PORTAL_ENV == "production"
TESTING = PORTAL_ENV == "test" or "pytest" in sys.modules
# Off unless a developer sets PORTAL_DEBUG=1: the default start shows the portal's own error pages.
DEBUG = env_bool("PORTAL_DEBUG", default=False)
if PRODUCTION and DEBUG:
    raise ConfigError("PORTAL_DEBUG must be off when PORTAL_ENV=production.")


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if PRODUCTION and (len(key) < 50 or len(set(key)) < 5):
            raise ConfigError("SECRET_KEY is too weak for production: use at least 50 random characters.")
        return key
    if PRODUCTION:
        raise ConfigError("PORTAL_ENV=production needs SECRET_KEY (or SECRET_KEY_FILE); none was given.")
    # Embedded/dev mode: generate once into var/, never committed.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(64))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
PORTAL_REGION = env_str("PORTAL_REGION", "default")
PORTAL_BASE_URL = env_str("PORTAL_BASE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "auditlog",
    "channels",
    "csp",  # Content Security Policy header (issue 17; policy in "Production transport security")
    "axes",  # sign-in lock-out (issue 17): before apps.accounts, so its failure count is known to ours
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "apps.core",
    "apps.accounts",
]
# Domain apps plug themselves in: every folder under apps/ with an apps.py is installed.
# PORTAL_DISABLED_APPS (comma list) leaves some out, e.g. to work on one app in isolation.
_disabled = {"core", "accounts", *env_list("PORTAL_DISABLED_APPS")}
INSTALLED_APPS += sorted(
    f"apps.{p.parent.name}" for p in (BASE_DIR / "apps").glob("*/apps.py") if p.parent.name not in _disabled
)

MIDDLEWARE = [
    "apps.core.metrics.RequestMetricsMiddleware",  # first: its time covers the whole chain
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # right after SecurityMiddleware: every answer gets the policy
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.accounts.middleware.SessionIdleTimeoutMiddleware",  # issue 17: idle sessions end
    "apps.accounts.middleware.TwoFactorMiddleware",  # issue 17: 2FA-bound sessions verify or enrol first
    "apps.core.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.core.middleware.DomainErrorMiddleware",
    "apps.core.middleware.ApiSlashMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    "axes.middleware.AxesMiddleware",  # issue 17: turns a lock-out into the sign-in page's message
]

ROOT_URLCONF = "portal.urls"
CSRF_FAILURE_VIEW = "apps.core.views.csrf_failure"
ASGI_APPLICATION = "portal.asgi.application"
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
                "apps.core.context_processors.portal",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
EMBEDDED_DATABASE = DATABASE_URL is None
# Connections per process are bounded: the web process runs requests on PORTAL_WEB_THREADS
# threads (apps/core/asgi_handler.py); PostgreSQL connections come from Django's psycopg pool
# (DATABASE_POOL_SIZE per process, handed back at the end of each request or task), SQLite keeps
# one connection per thread.
PORTAL_WEB_THREADS = env_int("PORTAL_WEB_THREADS", 8, minimum=1, maximum=256)
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", PORTAL_WEB_THREADS + 4, minimum=1, maximum=1000)
DATABASE_POOL_TIMEOUT_S = env_float("DATABASE_POOL_TIMEOUT_S", 10.0)
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        options = DATABASES["default"].setdefault("OPTIONS", {})
        # Short OLTP queries: PostgreSQL's JIT compiled a 100,000-point series read for ~6 ms
        # whenever statistics lagged behind a large ingest; it never pays off for these queries.
        options["options"] = "-c jit=off"
        # The pool checks a connection when it is handed out; Django's own persistence is off.
        options["pool"] = {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": DATABASE_POOL_TIMEOUT_S,
                           "max_idle": 300}  # fmt: skip
        DATABASES["default"].update(CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=False)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": Path(env_str("PORTAL_SQLITE_PATH", str(VAR_DIR / "portal.sqlite3"))),
            "CONN_MAX_AGE": 600,  # reopening SQLite and re-running the PRAGMAs per request costs ~1 ms
            "OPTIONS": {
                # WAL lets the web process read while a worker writes; IMMEDIATE takes the write
                # lock at BEGIN so concurrent transactions queue instead of failing mid-way.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
            # A file, not :memory:, so that worker and server processes started by tests share it.
            "TEST": {"NAME": str(VAR_DIR / "test.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, channel layer, cache, online store ----------------------------------------
EMBEDDED_REDIS = env_str("REDIS_URL") is None
EMBEDDED_REDIS_PORT = env_int("PORTAL_REDIS_PORT", 6390, minimum=1, maximum=65535)
REDIS_URL = env_str("REDIS_URL") or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "portal:ch:", "capacity": 500, "expiry": 30},
    }
}
# One Redis connection pool per process for the cache and the API throttle (Django's RedisCache
# builds a pool per cache object, and under ASGI a cache object per request: a new TCP connection
# for every request); REDIS_POOL_SIZE connections at most, shared by every thread.
REDIS_POOL_SIZE = env_int("REDIS_POOL_SIZE", PORTAL_WEB_THREADS + 4, minimum=1, maximum=1000)
CACHES = {
    "default": {
        "BACKEND": "apps.core.redis_pool.PooledRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "portal",
    },
    "local": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "portal-local"},
}

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A long training job must not be redelivered while it still runs (visibility timeout > max runtime).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600)}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    "audit-chain-verify": {"task": "core.audit_verify", "schedule": 3600.0, "options": {"queue": "default"}},
    # The database is the source of truth for jobs: re-dispatch or resume those whose message or
    # worker is gone (apps/core/recovery.py).
    "recover-jobs": {"task": "core.recover_jobs", "schedule": 60.0, "options": {"queue": "default"}},
    # Runs whose client went silent are flagged stale, never counted as training.
    "mark-stale-runs": {"task": "experiments.mark_stale_runs", "schedule": 60.0, "options": {"queue": "default"}},
    # Storage limitation (GDPR art. 5(1)(e), UAE PDPL): delete feature data past each view's retention.
    "features-retention-sweep": {
        "task": "features.retention_sweep",
        "schedule": 86400.0,
        "options": {"queue": "default"},
    },
}
# Where a training job's portal writes run: "process" (a writer process per worker process, off the
# training loop's GIL), or "thread" (a writer thread in the worker process).
TRAINING_WRITER = env_choice("TRAINING_WRITER", ("process", "thread", "inline"), "process")
QUEUE_COST_PER_HOUR = {"cpu": env_float("COST_CPU_PER_HOUR", 0.10), "gpu": env_float("COST_GPU_PER_HOUR", 2.50)}
# The currency of the queue rates above, as pages show costs ("$0.42").
COST_CURRENCY = env_str("COST_CURRENCY", "USD")
# A job's Redis lease (so a redelivered message never runs twice at once); a killed worker's job
# resumes after at most this long.
TRAINING_LEASE_TTL_S = env_int("TRAINING_LEASE_TTL_S", 60, minimum=5, maximum=3600)
TRAINING_ONNX_EXPORTER = env_choice("TRAINING_ONNX_EXPORTER", ("auto", "dynamo", "torchscript"), "auto")
TRAINING_CPU_THREADS = env_int("TRAINING_CPU_THREADS", 1, minimum=1, maximum=256)
# The portal's URL as script jobs (and other outside code) reach it: their PORTAL_URL and
# MLFLOW_TRACKING_URI. Behind a proxy, the proxy's address.
PORTAL_PUBLIC_URL = (env_str("PORTAL_PUBLIC_URL", "http://127.0.0.1:8000") or "").rstrip("/")
if not PORTAL_PUBLIC_URL.startswith(("http://", "https://")):
    raise ConfigError("PORTAL_PUBLIC_URL must start with http:// or https://, e.g. http://portal:8000.")
# Script jobs (users' own training code): the largest upload (a .py or a .zip/.tar.gz of a folder,
# also its unpacked size), the default memory limit of a job, and how long a cancelled or
# over-limit script gets between SIGTERM and SIGKILL.
TRAINING_SCRIPT_MAX_BYTES = env_int("TRAINING_SCRIPT_MAX_BYTES", 50 << 20, minimum=1024, maximum=4 << 30)
TRAINING_SCRIPT_MEMORY_MB = env_int("TRAINING_SCRIPT_MEMORY_MB", 4096, minimum=64, maximum=1 << 20)
TRAINING_SCRIPT_KILL_GRACE_S = env_int("TRAINING_SCRIPT_KILL_GRACE_S", 5, minimum=0, maximum=300)
# The Python that script jobs run with: a training environment holding the teams' libraries (torch,
# mlflow, ...), kept apart from the portal's own; the worker's Python when unset.
TRAINING_SCRIPT_PYTHON = env_str("TRAINING_SCRIPT_PYTHON", sys.executable) or sys.executable
if not Path(TRAINING_SCRIPT_PYTHON).is_file():
    raise ConfigError(
        f"TRAINING_SCRIPT_PYTHON={TRAINING_SCRIPT_PYTHON!r} is not a file: name a Python interpreter (a training environment)."
    )

# --- Auth -------------------------------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # issue 17: refuses locked-out sign-ins; must stay first
    "apps.accounts.principals.PortalModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object, anonymous means no access
GUARDIAN_RAISE_403 = False
# Sessions read from the cache (Redis, one pooled round trip) and written through to the database,
# so a Redis flush signs nobody out.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365, minimum=1)

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "apps.core.api.permissions.PortalPermission",
    ],
    # Depth, surrogate and size limits on JSON bodies (apps/core/api/parsers.py): 400/413, never 500.
    "DEFAULT_PARSER_CLASSES": [
        "apps.core.api.parsers.PortalJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.PortalPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.api.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"user": env_str("API_THROTTLE_RATE", "6000/min")},
    "EXCEPTION_HANDLER": "apps.core.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "URL_FORMAT_OVERRIDE": None,  # `?format=csv` is the audit export, not a renderer switch
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps Portal API",
    "DESCRIPTION": "Model catalog, feature store, experiments, training, approvals and serving. "
    "Authenticate with `Authorization: Token <key>` (create one on your profile page).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # The schema and its viewers are not public (shared/API.md): signed in, token scope `read`.
    "SERVE_PERMISSIONS": ["apps.core.api.permissions.PortalPermission"],
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "portal.schema_enums.RUN_STATUS",
        "RunStartStatusEnum": "portal.schema_enums.RUN_START_STATUS",
        "RunSourceEnum": "portal.schema_enums.RUN_SOURCE",
        "FeatureViewSourceEnum": "portal.schema_enums.FEATURE_VIEW_SOURCE",
        "MaterializationStateEnum": "portal.schema_enums.MATERIALIZATION_STATE",
        "TrainingJobStateEnum": "portal.schema_enums.TRAINING_JOB_STATE",
        "SweepStateEnum": "portal.schema_enums.SWEEP_STATE",
        "PromotionStateEnum": "portal.schema_enums.PROMOTION_STATE",
        "PromotionRiskEnum": "portal.schema_enums.PROMOTION_RISK",
        "RouteModeEnum": "portal.schema_enums.ROUTE_MODE",
        "SweepModeEnum": "portal.schema_enums.SWEEP_MODE",
        "ResourceClassEnum": "portal.schema_enums.RESOURCE_CLASS",
        "AlertStateEnum": "portal.schema_enums.ALERT_STATE",
        "AlertSeverityEnum": "portal.schema_enums.ALERT_SEVERITY",
        "AlertKindEnum": "portal.schema_enums.ALERT_KIND",
        "DriftReportStateEnum": "portal.schema_enums.DRIFT_REPORT_STATE",
        "DriftReportStatusEnum": "portal.schema_enums.DRIFT_REPORT_STATUS",
        "ProfileStateEnum": "portal.schema_enums.PROFILE_STATE",
        "WebhookDeliveryStateEnum": "portal.schema_enums.WEBHOOK_DELIVERY_STATE",
    },
}

# --- Audit ------------------------------------------------------------------------------------
AUDITLOG_LOGENTRY_MODEL = "core.AuditEntry"
AUDITLOG_INCLUDE_ALL_MODELS = True
# VaultBlob rows are storage bookkeeping under audited owners (model versions, training jobs,
# datasets); auditing them too wrote two hash-chained entries per training checkpoint. Downloads
# and key rotation are audited as events (apps.core.vault).
# Webhook delivery attempts and alert history lines are the delivery log and the alert's own
# history (a retry storm would write a chained entry per attempt); the alert and webhook rows
# they belong to are audited.
AUDITLOG_EXCLUDE_TRACKING_MODELS = (
    "sessions", "contenttypes", "admin", "auditlog", "core.VaultBlob", "monitoring.WebhookAttempt",
    "monitoring.AlertEvent",
)  # fmt: skip
AUDITLOG_EXCLUDE_TRACKING_FIELDS = ("last_login", "last_used_at", "updated_at")
AUDITLOG_MASK_TRACKING_FIELDS = ("password", "key_hash", "wrapped_key")
AUDITLOG_STORE_JSON_CHANGES = True
AUDITLOG_DISABLE_REMOTE_ADDR = False
