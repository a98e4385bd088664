"""Portal settings, part 2 of 4: static files, the artifact vault, S3-compatible storage, the catalog,
the feature store, training, metrics and e-mail."""

from __future__ import annotations

import plotly  # the package ships plotly.min.js, served as-is

from portal.settings.base import *

# --- Static files: everything local, nothing from a CDN ---------------------------------------

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
