"""Portal settings, part 3 of 4: approvals, serving and monitoring (each owned by its app)."""

from __future__ import annotations

from portal.settings.storage import *

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
