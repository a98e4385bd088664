"""A scoring job's Redis keys: the delivery lease (a redelivered message never runs a job twice at
once) and where recovery looks for it.

The lease is SET NX PX under the job's task id, refreshed every TTL/3 by a heartbeat thread while a
delivery runs and released at its end; a killed worker's lease expires and recovery resumes the
job from its last finished part. Redis being unreachable does not stop a job (the broker is the
same Redis, so this is rare): it runs without a lease, with a warning.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid

from django.conf import settings

from apps.core import workers
from apps.serving.models import ScoringJob

log = logging.getLogger(__name__)
LEASE_KEY = "portal:serving:scoring:lease:{}"
_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


def lease_ttl_s() -> float:
    """The same TTL as training jobs' leases (one knob for how fast a killed worker's job resumes)."""
    return float(settings.TRAINING_LEASE_TTL_S)


def lease_key(job: ScoringJob) -> str:
    return LEASE_KEY.format(job.celery_task_id or f"job-{job.pk}")


def lease_held(job: ScoringJob) -> bool | None:
    """Whether a live delivery holds the job's lease; None when Redis cannot be asked."""
    try:
        return bool(workers.redis_client().exists(lease_key(job)))
    except Exception:
        log.warning("could not read the lease of scoring job %s from Redis", job.pk)
        return None


class ScoringLease:
    """The lease of one delivery of one job (see the module docstring)."""

    def __init__(self, job: ScoringJob, *, hostname: str = "") -> None:
        self.job_id = job.pk
        self.key = lease_key(job)
        self.token = f"{hostname or 'worker'}:{os.getpid()}:{uuid.uuid4().hex}"
        self.ttl_ms = max(1000, int(lease_ttl_s() * 1000))
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        try:
            self.held = bool(workers.redis_client().set(self.key, self.token, nx=True, px=self.ttl_ms))
        except Exception:
            log.warning("scoring job %s: Redis unreachable, running without a lease", self.job_id, exc_info=True)
            return True
        if self.held:
            self._thread = threading.Thread(target=self._beat, name=f"scoring-{self.job_id}-lease", daemon=True)
            self._thread.start()
        return self.held

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                client = workers.redis_client()
                if not client.eval(_REFRESH, 1, self.key, self.token, self.ttl_ms):
                    # expired during a stall: take it back unless another delivery holds it now
                    client.set(self.key, self.token, nx=True, px=self.ttl_ms)
            except Exception:
                log.warning("scoring job %s: lease refresh failed", self.job_id, exc_info=True)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            self.held = False
            try:
                workers.redis_client().eval(_RELEASE, 1, self.key, self.token)
            except Exception:  # it expires on its own
                log.warning("scoring job %s: lease release failed", self.job_id, exc_info=True)
