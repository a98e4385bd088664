"""Portal settings, driven by environment variables (see README.md, "Configuration").

Embedded mode (the default): SQLite in WAL mode and a portal-managed redis-server under var/.
Services mode: DATABASE_URL (PostgreSQL) and REDIS_URL point at real services.
"""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import dj_database_url

from portal.env import ConfigError, env_bool, env_choice, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
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

# --- Static files: everything local, nothing from a CDN ---------------------------------------
import plotly  # noqa: E402  (the package ships plotly.min.js, served as-is)

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"  # filled by collectstatic in production
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at every start when it is missing
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = env_bool("WHITENOISE_AUTOREFRESH", False)  # rescans files per request: slow
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "apps.core.staticfiles.PortalManifestStorage"  # WhiteNoise's, URLs kept per process
        if PRODUCTION
        else "apps.core.staticfiles.PortalStaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 50 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Artifact vault, catalog and feature store ----------------------------------------------
# Key ring spec "kid:base64key,..." (first = active); embedded mode generates var/vault-keyring.
VAULT_KEYRING = env_str("VAULT_KEYRING")
VAULT_ROOT = Path(env_str("VAULT_ROOT", str(VAR_DIR / "vault")))
# S3-compatible object storage (AWS S3, MinIO, Ceph) for the vault and the offline feature store,
# through boto3 (vault) and pyarrow's S3 filesystem (feature files). Objects are ciphertext only
# for the vault and sealed feature files: encryption stays client-side. A bucket per region:
# "<region>=<bucket>,..." in *_S3_REGION_BUCKETS; the "default" region uses *_S3_BUCKET.
S3_ENDPOINT_URL = env_str("S3_ENDPOINT_URL")  # empty: AWS's own endpoint for S3_REGION
S3_REGION = env_str("S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = env_str("S3_ACCESS_KEY_ID")  # empty: boto3's default chain (instance role, ...)
S3_SECRET_ACCESS_KEY = env_str("S3_SECRET_ACCESS_KEY")
S3_CA_BUNDLE = env_str("S3_CA_BUNDLE")  # a CA file to verify the endpoint's certificate with
S3_ADDRESSING_STYLE = env_choice("S3_ADDRESSING_STYLE", ("auto", "path", "virtual"), "auto")
S3_MULTIPART_CHUNK_MB = env_int("S3_MULTIPART_CHUNK_MB", 16, minimum=5, maximum=1024)


def _region_buckets(name: str, default_bucket: str | None) -> dict[str, str]:
    buckets = {"default": default_bucket} if default_bucket else {}
    for item in env_list(name):
        region, sep, bucket = item.partition("=")
        if not sep or not region.strip() or not bucket.strip():
            raise ConfigError(f"{name}: {item!r} is not <region>=<bucket>.")
        buckets[region.strip()] = bucket.strip()
    return buckets


VAULT_S3_BUCKET = env_str("VAULT_S3_BUCKET")  # set: the vault's ciphertext goes to S3, not VAULT_ROOT
VAULT_S3_BUCKETS = _region_buckets("VAULT_S3_REGION_BUCKETS", VAULT_S3_BUCKET)
# Tests point the vault at another local folder with a Django storage; production uses the above.
VAULT_STORAGE = None
if PRODUCTION and not VAULT_KEYRING:
    raise ConfigError("PORTAL_ENV=production needs VAULT_KEYRING (or VAULT_KEYRING_FILE): the artifact master keys.")
CATALOG_MAX_ARTIFACT_BYTES = env_int("CATALOG_MAX_ARTIFACT_BYTES", 512 * 1024 * 1024, minimum=1024)
EXPERIMENTS_MAX_ARTIFACT_BYTES = env_int("EXPERIMENTS_MAX_ARTIFACT_BYTES", 200 * 1024 * 1024, minimum=1024)
# Live metric messages are coalesced per run over this window (seconds) before they are sent.
EXPERIMENTS_LIVE_WINDOW_S = env_float("EXPERIMENTS_LIVE_WINDOW_S", 0.1)
# A running run with no log or heartbeat for this long is flagged stale, never counted as training.
EXPERIMENTS_STALE_AFTER_S = env_int("EXPERIMENTS_STALE_AFTER_S", 900, minimum=60, maximum=30 * 86400)
# An in-process near cache in front of Redis for online feature reads (per web process).
FEATURE_ONLINE_NEAR_CACHE = env_bool("FEATURE_ONLINE_NEAR_CACHE", True)
FEATURE_STORE_ROOT = Path(env_str("FEATURE_STORE_ROOT", str(VAR_DIR / "features")))
FEATURE_STORE_S3_BUCKET = env_str("FEATURE_STORE_S3_BUCKET")  # set: feature files go to S3
FEATURE_STORE_S3_BUCKETS = _region_buckets("FEATURE_STORE_S3_REGION_BUCKETS", FEATURE_STORE_S3_BUCKET)

if TESTING:  # personas are created per test; PBKDF2 would cost ~1 s each on this VM
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
# English only: no catalogs to translate, and the translation machinery cost ~0.5 ms per list page
# (a context-local language lookup for every value a template prints).
USE_I18N = False
USE_TZ = True

# LOG_FORMAT=json: one JSON object per line (apps/core/logjson.py) for log shippers; text otherwise.
LOG_FORMAT = env_choice("LOG_FORMAT", ("text", "json"), "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "apps.core.logjson.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"}
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Libraries whose INFO lines nobody can act on (the ONNX exporter narrates every optimizer pass).
    "loggers": {
        name: {"level": "WARNING"}
        for name in ("django.db.backends", "onnx_ir", "onnxscript", "torch._dynamo", "torch.export")
    }
    # "torchvision is not installed. Skipping torchvision::nms", four times per export: not ours to fix.
    | {"torch.onnx": {"level": "ERROR"}},
}
if LOG_FORMAT == "json":  # uvicorn set up its own text loggers before Django started: JSON for them too
    LOGGING["loggers"] |= {
        name: {"handlers": ["console"], "level": "INFO", "propagate": False} for name in ("uvicorn", "uvicorn.access")
    }
# Celery workers replace the root logger's handlers with their own text ones unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

# --- Metrics (Prometheus /metrics: apps/core/metrics.py, apps/monitoring/metrics) --------------
# Off: the request, predict and online-read instruments stop counting (the scrape-time gauges stay).
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)

# --- E-mail ---------------------------------------------------------------------------------------
# Notifications (apps/notifications) also go out by e-mail. Embedded mode prints them on the
# console; services mode sends through SMTP (EMAIL_HOST, EMAIL_PORT, ... as Django reads them).
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if EMBEDDED_REDIS
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "MLOps Portal <portal@localhost>")

# --- Approvals (issue #14; owned by the approvals app) ------------------------------------------
# Default gate policies, one per alias, seeded as rows (model null) after migrate when missing;
# platform admins edit the rows (and add per-model overrides) at /api/v1/gate-policies/, so later
# changes here do not overwrite theirs. An alias with no policy at all cannot be promoted.
APPROVAL_DEFAULT_CHECKS = [
    {"name": "metric_threshold", "params": {"metric": "val_auc", "max_drop": 0.005}},
    {"name": "onnx_parity", "params": {"max_abs_diff": 1e-4}},
    {"name": "model_card", "params": {}},
    {"name": "artifact_digest", "params": {}},
    {"name": "lineage", "params": {}},
    {"name": "residency", "params": {"allowed_regions": ["default"]}},
    {"name": "open_alerts", "params": {}},
]
APPROVAL_DEFAULT_POLICIES = {
    alias: {
        "approver_groups": ["approvers"],
        "approvals_required": env_int("APPROVAL_REQUIRED_APPROVALS", 2, minimum=1, maximum=20),
        "checks": APPROVAL_DEFAULT_CHECKS,
        "change_window": None,
        "expiry_hours": env_int("APPROVAL_EXPIRY_HOURS", 72, minimum=1, maximum=90 * 24),
    }
    for alias in ("production", "champion")
}
# Approvers and the requester are reminded this long before a pending request expires.
APPROVAL_REMIND_BEFORE_HOURS = env_int("APPROVAL_REMIND_BEFORE_HOURS", 12, minimum=1, maximum=30 * 24)
CELERY_BEAT_SCHEDULE |= {
    "approvals-expire": {"task": "approvals.expire_due", "schedule": 300.0, "options": {"queue": "default"}},
    "approvals-remind": {"task": "approvals.remind_expiring", "schedule": 900.0, "options": {"queue": "default"}},
}

# --- Serving (issue #15; owned by the serving app) -----------------------------------------------
# Rows per predict call (more: 413) and the request body limit of the lean predict path.
SERVING_MAX_ROWS = env_int("SERVING_MAX_ROWS", 1000, minimum=1, maximum=1_000_000)
SERVING_MAX_BODY_BYTES = env_int("SERVING_MAX_BODY_BYTES", 8 << 20, minimum=1024, maximum=1 << 30)
# ONNX Runtime sessions kept per process (least recently used evicted past this many megabytes of
# model files; each eviction is logged). Threads per session: one request per core.
SERVING_SESSION_CACHE_MB = env_int("SERVING_SESSION_CACHE_MB", 1024, minimum=1, maximum=1 << 20)
SERVING_ORT_INTRA_THREADS = env_int("SERVING_ORT_INTRA_THREADS", 1, minimum=0, maximum=256)
# "auto": CUDA where onnxruntime-gpu offers it, else CPU; "cpu": always CPU.
SERVING_ORT_PROVIDER = env_choice("SERVING_ORT_PROVIDER", ("auto", "cpu"), "auto")
# Prediction logs: default sample of new endpoints, how long they are kept, how often the
# in-process buffer is written (one batch insert), and how many entries it holds before it counts
# new ones as lost rather than block a prediction.
SERVING_LOG_SAMPLE_RATE = env_float("SERVING_LOG_SAMPLE_RATE", 0.1)
SERVING_LOG_RETENTION_DAYS = env_int("SERVING_LOG_RETENTION_DAYS", 30, minimum=1, maximum=3650)
SERVING_LOG_FLUSH_S = env_float("SERVING_LOG_FLUSH_S", 1.0)
SERVING_LOG_BUFFER = env_int("SERVING_LOG_BUFFER", 10_000, minimum=10, maximum=10_000_000)
# Shadow copies waiting for their turn off the request path; beyond this they are dropped (counted).
SERVING_SHADOW_QUEUE = env_int("SERVING_SHADOW_QUEUE", 1000, minimum=1, maximum=1_000_000)
# Canary ramps are evaluated this often (beat); batch scoring reads and writes this many rows per chunk.
SERVING_CANARY_EVAL_S = env_float("SERVING_CANARY_EVAL_S", 10.0)
SERVING_SCORING_CHUNK_ROWS = env_int("SERVING_SCORING_CHUNK_ROWS", 50_000, minimum=100, maximum=10_000_000)
SERVING_SCORING_MAX_UPLOAD_BYTES = env_int("SERVING_SCORING_MAX_UPLOAD_BYTES", 2 << 30, minimum=1024)
CELERY_BEAT_SCHEDULE |= {
    "serving-canaries": {
        "task": "serving.evaluate_canaries",
        "schedule": SERVING_CANARY_EVAL_S,
        "options": {"queue": "default"},
    },
    "serving-log-retention": {"task": "serving.retention_sweep", "schedule": 86400.0, "options": {"queue": "default"}},
}

# --- Monitoring (issue #16; owned by the monitoring app) -------------------------------------------
# Rows a reference profile is built from (an even sample beyond) and a drift check reads from the
# logs or a feature view's window (the newest beyond); fewer rows than MONITORING_MIN_ROWS give no
# verdict. A reference file uploaded for a model trained elsewhere may be this large.
MONITORING_PROFILE_MAX_ROWS = env_int("MONITORING_PROFILE_MAX_ROWS", 1_000_000, minimum=100, maximum=100_000_000)
MONITORING_WINDOW_MAX_ROWS = env_int("MONITORING_WINDOW_MAX_ROWS", 1_000_000, minimum=100, maximum=100_000_000)
MONITORING_MIN_ROWS = env_int("MONITORING_MIN_ROWS", 30, minimum=1, maximum=1_000_000)
MONITORING_PROFILE_MAX_UPLOAD_BYTES = env_int("MONITORING_PROFILE_MAX_UPLOAD_BYTES", 512 << 20, minimum=1024)
# Beat looks for due drift checks this often; a worker silent this long is reported offline.
MONITORING_CHECK_EVERY_S = env_float("MONITORING_CHECK_EVERY_S", 60.0)
MONITORING_WORKER_OFFLINE_S = env_int("MONITORING_WORKER_OFFLINE_S", 60, minimum=15, maximum=86400)
CELERY_BEAT_SCHEDULE |= {
    "monitoring-drift-checks": {
        "task": "monitoring.checks_due",
        "schedule": MONITORING_CHECK_EVERY_S,
        "options": {"queue": "default"},
    },
    "monitoring-workers": {"task": "monitoring.watch_workers", "schedule": 30.0, "options": {"queue": "default"}},
}
# Incident webhooks: each POST's timeout; retries wait uniform(0, min(cap, base * 2^(attempt-1))) s
# (full jitter); after MAX_ATTEMPTS a delivery is dead-lettered. Beat sweeps overdue retries this often.
MONITORING_WEBHOOK_TIMEOUT_S = env_float("MONITORING_WEBHOOK_TIMEOUT_S", 5.0)
MONITORING_WEBHOOK_BACKOFF_BASE_S = env_float("MONITORING_WEBHOOK_BACKOFF_BASE_S", 2.0)
MONITORING_WEBHOOK_BACKOFF_CAP_S = env_float("MONITORING_WEBHOOK_BACKOFF_CAP_S", 600.0)
MONITORING_WEBHOOK_MAX_ATTEMPTS = env_int("MONITORING_WEBHOOK_MAX_ATTEMPTS", 8, minimum=1, maximum=100)
MONITORING_WEBHOOK_SWEEP_S = env_float("MONITORING_WEBHOOK_SWEEP_S", 15.0)
CELERY_BEAT_SCHEDULE |= {
    "monitoring-webhooks-due": {
        "task": "monitoring.webhooks_due",
        "schedule": MONITORING_WEBHOOK_SWEEP_S,
        "options": {"queue": "default"},
    },
}

# --- Sign-in: lock-out, two-factor and step-up (issue 17) --------------------------------------
# Lock-out (django-axes, apps/accounts/lockout.py): after AXES_FAILURE_LIMIT failed sign-ins for one
# username from one client address, that pair is refused for the cool-off (each further attempt
# restarts it) or until a platform admin unlocks it at /accounts/lockouts/. Per username AND address:
# a guesser is stopped, yet nobody can lock a colleague out from elsewhere by typing their name.
# The address is the one the audit trail records (REMOTE_ADDR; behind a proxy, have the ASGI server
# set it from the proxy's header), never a client-supplied X-Forwarded-For.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1, maximum=100)
PORTAL_LOCKOUT_COOLOFF_MIN = env_int("PORTAL_LOCKOUT_COOLOFF_MIN", 15, minimum=1, maximum=7 * 24 * 60)
AXES_COOLOFF_TIME = PORTAL_LOCKOUT_COOLOFF_MIN / 60  # hours, as axes reads it
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "apps.core.audit.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False  # one row per failure, kept forever: the audit trail aggregates instead
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are audited by the portal (login, logout)
AXES_VERBOSE = False
# Unlocking is the portal's page (audited with the admin who did it); axes' own admin pages would
# delete its counters without an audit entry (they are not row-audited, see below).
AXES_ENABLE_ADMIN = False
# Failed sign-ins in the audit trail: at most one `login.failed` entry per username and address per
# window (carrying the failure count), and at most this many usernames per address per window; the
# rest of that address's failures fold into one entry. An anonymous caller cannot grow the table.
PORTAL_LOGIN_AUDIT_WINDOW_S = env_int("PORTAL_LOGIN_AUDIT_WINDOW_S", 900, minimum=60, maximum=86400)
PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP = env_int("PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP", 10, minimum=1, maximum=1000)
# Two-factor (django-otp TOTP, recovery codes from otp_static): users holding one of these roles must
# enrol, and sign in with a code; PORTAL_2FA_ENFORCED=false turns enrolment and step-up requirements
# off (a user who enrolled is still asked for a code at sign-in).
PORTAL_2FA_ENFORCED = env_bool("PORTAL_2FA_ENFORCED", True)
PORTAL_2FA_REQUIRED_ROLES = env_list("PORTAL_2FA_REQUIRED_ROLES", ["approvers", "platform-admins"])
PORTAL_2FA_PENDING_S = env_int("PORTAL_2FA_PENDING_S", 300, minimum=30, maximum=3600)  # password to code
PORTAL_2FA_RECOVERY_CODES = 10
# Step-up: an approval decision needs a second factor passed within this many seconds.
PORTAL_STEPUP_MAX_AGE_S = env_int("PORTAL_STEPUP_MAX_AGE_S", 300, minimum=30, maximum=86400)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "MLOps Portal")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Session expiry: SESSION_COOKIE_AGE is the absolute limit; this the idle one (apps/accounts/middleware.py).
PORTAL_SESSION_IDLE_S = env_int("PORTAL_SESSION_IDLE_S", 30 * 60, minimum=60, maximum=7 * 86400)
# Lock-out counters, OTP devices and recovery codes are not audited row by row: a counter row per
# failure would let anyone grow the audit trail, and device rows hold secrets. Their changes are
# audited as events (login.failed, login.unlock, 2fa.*).
AUDITLOG_EXCLUDE_TRACKING_MODELS = (
    *AUDITLOG_EXCLUDE_TRACKING_MODELS, "axes", "otp_totp", "otp_static",
    "accounts.OtpSeal", "accounts.SealedTOTPDevice", "accounts.SealedStaticDevice",  # the same rows, sealed
)  # fmt: skip


# --- Single sign-on: OpenID Connect (issue 17) -------------------------------------------------
# Off unless the provider (OIDC_ISSUER, or OIDC_OP_DISCOVERY_URL, or the four endpoints) and the
# portal's client (id and secret) are given together; docs/SSO.md lists every variable. Endpoints
# left unset come from the provider's discovery document at the first sign-in, never here: a
# provider that is down does not stop the portal from starting. Sessions then work as any other
# (apps/accounts/oidc.py); the provider's groups grant and remove the portal roles in
# OIDC_ROLE_MAP at every sign-in, and nothing else.
def _oidc_map(name: str) -> dict[str, tuple[str, ...]]:
    """`idp-group=portal-name,...` (or `;`-separated when group names hold commas, as LDAP DNs do);
    the last `=` of an entry splits it. One provider group may map to several names."""
    raw = env_str(name, "") or ""
    mapping: dict[str, tuple[str, ...]] = {}
    for entry in (e.strip() for e in raw.split(";" if ";" in raw else ",")):
        if not entry:
            continue
        group, _, target = (part.strip() for part in entry.rpartition("="))
        if not group or not target:
            raise ConfigError(f"{name}: {entry!r} is not 'provider-group=portal-name'.")
        mapping[group] = tuple(dict.fromkeys((*mapping.get(group, ()), target)))
    return mapping


OIDC_ISSUER = (env_str("OIDC_ISSUER", "") or "").rstrip("/")
OIDC_OP_DISCOVERY_URL = env_str("OIDC_OP_DISCOVERY_URL") or (
    f"{OIDC_ISSUER}/.well-known/openid-configuration" if OIDC_ISSUER else ""
)
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "")
_oidc_endpoints = (OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT, OIDC_OP_JWKS_ENDPOINT)
_oidc_given = (OIDC_OP_DISCOVERY_URL, *_oidc_endpoints, OIDC_RP_CLIENT_ID, OIDC_RP_CLIENT_SECRET)
OIDC_ENABLED = bool((OIDC_OP_DISCOVERY_URL or all(_oidc_endpoints)) and OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET)
if any(_oidc_given) and not OIDC_ENABLED:
    raise ConfigError(
        "Single sign-on is half configured: set OIDC_ISSUER (or OIDC_OP_DISCOVERY_URL, or all four "
        "OIDC_OP_*_ENDPOINT variables), OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET together, or none of them."
    )
if PRODUCTION and OIDC_ENABLED and any(u.startswith("http://") for u in (OIDC_OP_DISCOVERY_URL, *_oidc_endpoints)):
    raise ConfigError("PORTAL_ENV=production needs https:// URLs for the OpenID Connect provider.")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")  # "Sign in with <this>"
OIDC_RP_SIGN_ALGO = env_choice("OIDC_RP_SIGN_ALGO", ("RS256", "RS384", "RS512", "ES256", "ES384", "HS256"), "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_ROLE_MAP = _oidc_map("OIDC_ROLE_MAP")  # provider group -> portal roles (apps/accounts/roles.py)
OIDC_TEAM_MAP = _oidc_map("OIDC_TEAM_MAP")  # provider group -> portal team slugs
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USER", True)
# A local account (one with a password) of the same username is not taken over unless allowed.
OIDC_LINK_LOCAL_USERS = env_bool("OIDC_LINK_LOCAL_USERS", False)
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT_S", 10.0)
OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_SSL", True)
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_authentication_callback"
if OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.append("apps.accounts.oidc.PortalOIDCBackend")  # after axes', which stays first

# --- Production transport security and Content Security Policy (issue 17) ----------------------
# Every mode sends one strict Content Security Policy (django-csp): scripts and styles only from
# the portal's own static files, so an injected <script> or style="..." does nothing. Templates
# hold no inline script, <style>, style= or on*= attribute (tests/core/test_csp.py walks them);
# data reach scripts through json_script (type="application/json" never runs) and data- attributes.
# connect-src 'self' covers the same-origin ws:/wss: sockets in CSP 3 browsers; PORTAL_BASE_URL's
# socket origin is listed too for browsers that predate that rule. form-action governs where
# forms post (and the redirects after a post); single sign-on starts from a link, a GET that
# form-action does not govern, and the provider's origin is added to it when SSO is configured.
# The API viewers: Swagger UI loads its init script from /api/v1/docs/?script; ReDoc's bundle
# injects <style> elements as it loads, so that one page allows inline styles (portal/urls.py).
from urllib.parse import urlsplit  # noqa: E402  (settings sections are appended per issue)

from csp.constants import NONE, SELF, UNSAFE_HASHES  # noqa: E402

_EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # base64(sha256(b""))


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


_base = urlsplit(PORTAL_BASE_URL)
_socket_origin = f"{'wss' if _base.scheme == 'https' else 'ws'}://{_base.netloc}"
# The provider's origin, should a form's answer ever redirect there (browsers check form-action on
# the redirects that follow a form post); sign-in itself starts from a link.
_sso_origin = _origin(OIDC_OP_AUTHORIZATION_ENDPOINT or OIDC_ISSUER or OIDC_OP_DISCOVERY_URL) if OIDC_ENABLED else None
_csp_report_uri = env_str("CSP_REPORT_URI")  # where browsers POST violation reports; none by default
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # plotly.js clears colour-bar rects with style="": the one attribute value allowed is the empty
        # one (the SHA-256 of ""), which styles nothing; any other style= attribute stays refused.
        "style-src-attr": [UNSAFE_HASHES, _EMPTY_STYLE_HASH],
        "img-src": [SELF, "data:"],  # Bootstrap's icons in CSS and Plotly's image export are data: URLs
        "font-src": [SELF],
        "connect-src": [SELF, _socket_origin],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF, *([_sso_origin] if _sso_origin else [])],
    }
    | ({"report-uri": [_csp_report_uri]} if _csp_report_uri else {}),
}
X_FRAME_OPTIONS = "DENY"  # frame-ancestors 'none' for browsers that only know the older header
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    # A gateway that terminates TLS forwards plain HTTP: it then names the header that carries the
    # original scheme (SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto, the default; "none" when no proxy
    # sits in front, so no client can claim https), and SECURE_SSL_REDIRECT=0 leaves redirecting to it.
    _proxy_header = env_str("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto")
    SECURE_PROXY_SSL_HEADER = (
        None if _proxy_header.lower() == "none" else ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
    )
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 86400, minimum=0, maximum=2 * 365 * 86400)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# --- Audit chain: keyed hashes and anchored checkpoints (issue 17) -----------------------------
# Entry hashes are HMACs under a key derived from the vault key ring (apps/core/audit_keys.py).
# Signed checkpoints {seq, head, count} go to an append-only file outside the database (and the
# "portal.audit" log): every AUDIT_CHECKPOINT_EVERY entries and every AUDIT_CHECKPOINT_INTERVAL_S.
# Cluster mode: point AUDIT_CHECKPOINT_PATH at storage every web and worker host shares.
AUDIT_CHECKPOINT_EVERY = env_int("AUDIT_CHECKPOINT_EVERY", 1000, minimum=1, maximum=10_000_000)
AUDIT_CHECKPOINT_INTERVAL_S = env_int("AUDIT_CHECKPOINT_INTERVAL_S", 3600, minimum=60, maximum=3600)
AUDIT_CHECKPOINT_PATH = Path(env_str("AUDIT_CHECKPOINT_PATH", str(VAR_DIR / "audit-checkpoints.jsonl")))
# The beat task walks the whole table when the last full walk is older than this (else only new rows).
AUDIT_FULL_VERIFY_EVERY_S = env_int("AUDIT_FULL_VERIFY_EVERY_S", 86400, minimum=0, maximum=30 * 86400)
# /healthz and the audit page verify at most this many new entries per request (the rest next time).
AUDIT_INCREMENTAL_MAX_ROWS = env_int("AUDIT_INCREMENTAL_MAX_ROWS", 10_000, minimum=1, maximum=10_000_000)
CELERY_BEAT_SCHEDULE["audit-chain-verify"] = {  # verifies, then anchors the head (apps/core/tasks.py)
    "task": "core.audit_verify",
    "schedule": float(AUDIT_CHECKPOINT_INTERVAL_S),
    "options": {"queue": "default"},
}
# auditlog's `auditlogflush` would delete the trail: a guard app listed before auditlog answers
# that command name first (Django takes a command from the earliest app that has it) and refuses.
INSTALLED_APPS.insert(INSTALLED_APPS.index("auditlog"), "apps.core.auditguard")

# --- Residency, retention, PII at rest and data-subject requests (issue 17) ---------------------
# residency and retention
# Regions objects may be pinned to besides "default" and PORTAL_REGION (comma-separated, e.g.
# "uae-north,eu-west"); model and experiment forms offer these. Data pinned to a region is stored,
# trained, served and exported only by the portal and workers of that region (apps/core/residency.py).
PORTAL_REGIONS = env_list("PORTAL_REGIONS", [])
# A portal refuses (403) predictions of a version pinned to a region it may not serve; those
# refusals are audited at most once per endpoint and version in this many seconds.
PORTAL_RESIDENCY_AUDIT_WINDOW_S = env_int("PORTAL_RESIDENCY_AUDIT_WINDOW_S", 300, minimum=1, maximum=86400)
# Run artifacts (vault files) older than this many days are purged daily, except those a registered
# model version was built from; 0 = keep forever (the default). An experiment's tag
# "retention_days" overrides it for its runs.
EXPERIMENTS_ARTIFACT_RETENTION_DAYS = (
    env_int("EXPERIMENTS_ARTIFACT_RETENTION_DAYS", 0, minimum=0, maximum=36500) or None
)
CELERY_BEAT_SCHEDULE |= {
    "experiments-artifact-retention": {
        "task": "experiments.retention_sweep",
        "schedule": 86400.0,
        "options": {"queue": "default"},
    },
}
# data-subject requests
# An erasure's audit event ("subject.erased") lists at most this many rewritten files with their
# digests; the full list is in its certificate, whose SHA-256 the event carries.
PRIVACY_AUDIT_MAX_FILES = env_int("PRIVACY_AUDIT_MAX_FILES", 1000, minimum=10, maximum=100000)
