"""The body of the `training.run_job` task: start or resume, train, export, register, account.

Idempotent across redelivery: a job that is already terminal is skipped; a job found `running`
was interrupted (worker lost) and resumes from its last checkpoint in the vault after deleting
the run's metric points logged after that checkpoint.

Never twice at once: with acks_late the broker redelivers a message whose first delivery is still
running (after its visibility timeout, or to a second worker). Each delivery must first take the
job's lease (Redis SET NX with an expiry, refreshed every TTL/3 by a heartbeat thread while the
delivery runs, released at its end); a delivery that finds a live lease returns `duplicate`
without touching the job. A lease whose holder died expires, and the next delivery resumes.

Only the job's current message runs it: a delivery whose task id is no longer the row's
`celery_task_id` (recovery or "run on CPU instead" sent a new message; the old one surfaced later,
e.g. restored from the broker's unacked set) returns `stale` and leaves the job alone.
"""

from __future__ import annotations

import io
import logging
import math
import os
import threading
import time
import traceback
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog import services as catalog
from apps.catalog.models import RegisteredModel
from apps.core import vault, workers
from apps.core.audit import acting_as
from apps.core.permissions import team_member
from apps.experiments.services import run_append_log, run_artifact_add, run_log_batch, run_truncate_metrics
from apps.training.callbacks import PortalCallbacks
from apps.training.datasource import load_arrays
from apps.training.models import TrainingJob
from apps.training.scripts.worker import ScriptFailed, script_job_run
from apps.training.search import pruner_for
from apps.training.services import LEASE_KEY, cost_of, job_transition, share_existing_with_team
from apps.training.writer_process import WriterLost

log = logging.getLogger(__name__)
State = TrainingJob.State
PARITY_TOLERANCE = 1e-4


WRITER_RESTARTS = 2  # a lost writer process is restarted and the job resumed at most this often


class JobFailed(Exception):
    """A reason to fail the job with a message for its owner."""


DUPLICATE = "duplicate"
STALE = "stale"


def lease_ttl_s() -> float:
    """Seconds a lease outlives its last refresh (settings.TRAINING_LEASE_TTL_S).

    Well under the broker's visibility timeout; it is also how long a job whose worker was killed
    waits before a redelivery resumes it.
    """
    return float(settings.TRAINING_LEASE_TTL_S)


def lease_retry_in_s(job_id: int) -> float:
    """When a refused duplicate delivery should look again: just after the current lease would expire."""
    ttl = lease_ttl_s()
    task_id = TrainingJob.objects.filter(pk=job_id).values_list("celery_task_id", flat=True).first()
    try:
        left_ms = workers.redis_client().pttl(LEASE_KEY.format(task_id or f"job-{job_id}"))
    except Exception:
        return ttl
    return ttl if left_ms is None or left_ms < 0 else min(ttl, left_ms / 1000 + 1.0)


class JobLease:
    """A per-job Redis lease (SET NX PX) that a heartbeat thread refreshes every TTL/3 while held.

    Keyed by the job's task id, unique even across databases. Redis being unreachable does not
    stop the job (the broker is the same Redis, so this is rare): it runs as before, with a warning.
    """

    _REFRESH = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
    )
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, job: TrainingJob, *, hostname: str = "", ttl_s: float | None = None) -> None:
        self.job_id = job.pk
        self.key = LEASE_KEY.format(job.celery_task_id or f"job-{job.pk}")
        self.token = f"{hostname or 'worker'}:{os.getpid()}:{uuid.uuid4().hex}"
        self.ttl_ms = max(1, int((lease_ttl_s() if ttl_s is None else ttl_s) * 1000))
        self.held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis = None

    def _client(self):
        if self._redis is None:
            self._redis = workers.redis_client()
        return self._redis

    def acquire(self) -> bool:
        try:
            self.held = bool(self._client().set(self.key, self.token, nx=True, px=self.ttl_ms))
        except Exception:
            log.warning("job %s: Redis unreachable, running without a lease", self.job_id, exc_info=True)
            return True
        return self.held

    def holder(self) -> str:
        try:
            value = self._client().get(self.key)
        except Exception:
            return ""
        return value.decode() if isinstance(value, bytes) else (value or "")

    def refresh(self) -> bool:
        """Extend our lease; if it expired meanwhile, take it back unless another delivery holds it."""
        if not self.held:
            return False
        try:
            client = self._client()
            if client.eval(self._REFRESH, 1, self.key, self.token, self.ttl_ms):
                return True
            if client.set(self.key, self.token, nx=True, px=self.ttl_ms):
                log.warning("job %s: lease had expired (stalled refresh); taken back", self.job_id)
                return True
            log.error("job %s: lease lost to %s while running", self.job_id, self.holder())
        except Exception:
            log.warning("job %s: lease refresh failed", self.job_id, exc_info=True)
        return False

    def _beat(self) -> None:
        interval = self.ttl_ms / 3000
        while not self._stop.wait(interval):
            self.refresh()

    def start_heartbeat(self) -> None:
        if self.held and self._thread is None:
            self._thread = threading.Thread(target=self._beat, name=f"training-job-{self.job_id}-lease", daemon=True)
            self._thread.start()

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.held:
            self.held = False
            try:
                self._client().eval(self._RELEASE, 1, self.key, self.token)
            except Exception:  # it expires on its own
                log.warning("job %s: lease release failed", self.job_id, exc_info=True)


def execute(job_id: int, *, hostname: str = "", task_id: str | None = None) -> str:
    """Run (or resume) the job once. `task_id` is the delivering message's id (None when called
    directly): a message that is no longer the job's current one returns `stale` untouched."""
    job = (
        TrainingJob.objects.select_related("owner", "run", "checkpoint", "training_set", "script_version__script")
        .filter(pk=job_id)
        .first()
    )
    if job is None or job.is_terminal:
        return "skipped"
    if _stale(job.celery_task_id, task_id):
        log.warning("job %s: message %s is stale (the job's message is now %s)", job.pk, task_id, job.celery_task_id)
        return STALE
    lease = JobLease(job, hostname=hostname)
    if not lease.acquire():
        log.warning("job %s: another delivery holds its lease (%s); not running it twice", job.pk, lease.holder())
        return DUPLICATE
    lease.start_heartbeat()
    try:
        return _execute(job, hostname, task_id)
    finally:
        lease.release()


def _stale(current: str, delivered: str | None) -> bool:
    return bool(delivered and current and delivered != current)


def _execute(job: TrainingJob, hostname: str, task_id: str | None) -> str:
    with acting_as(job.owner):
        if not _start(job, hostname, task_id):
            return STALE if _stale(job.celery_task_id, task_id) else job.state
        try:
            if job.script_version_id:  # the owner's own script (apps/training/scripts/worker.py)
                return script_job_run(job)
            return _train_resuming(job, hostname, task_id)
        except (JobFailed, ScriptFailed) as exc:
            _fail(job, str(exc))
        except ValidationError as exc:
            _fail(job, "; ".join(exc.messages))
        except Exception as exc:  # anything else still ends the job, with the reason on the run log
            log.exception("training job %s failed", job.pk)
            _fail(job, f"{type(exc).__name__}: {exc}", detail=traceback.format_exc())
        return job.state


def _start(job: TrainingJob, hostname: str, task_id: str | None = None) -> bool:
    with transaction.atomic():
        locked = TrainingJob.objects.select_for_update().get(pk=job.pk)
        job.state, job.cancel_requested = locked.state, locked.cancel_requested
        job.celery_task_id = locked.celery_task_id
        if job.is_terminal or _stale(locked.celery_task_id, task_id):  # recovery re-sent it meanwhile
            return False
        if job.cancel_requested:
            job_transition(job=job, to=State.CANCELLED, error="Cancelled before it started.")
            return False
        if job.state == State.RUNNING:  # redelivered after the worker was lost mid-training
            job_transition(job=job, to=State.RETRYING)
        job_transition(job=job, to=State.RUNNING, worker=hostname[:200], attempts=locked.attempts + 1)
    return True


def _train_resuming(job: TrainingJob, hostname: str, task_id: str | None = None) -> str:
    """`_train`, resumed from the last checkpoint (up to WRITER_RESTARTS times) if the writer process is lost."""
    from apps.training.engine.resources import ResourceUsage  # torch: the worker's training side only

    for restart in range(WRITER_RESTARTS + 1):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            return _train(job)
        except WriterLost as exc:
            # The lost attempt's time is still the job's (and its cost's); its wall clock includes
            # the data loading, a slight overcount next to the successful attempt's training time.
            wall = time.perf_counter() - wall0
            gpus = _device(job)[1] if job.device == "cuda" else 0
            _account(job, ResourceUsage(wall_s=wall, cpu_s=time.process_time() - cpu0, gpu_s=wall * gpus))
            if restart == WRITER_RESTARTS:
                raise
            log.warning("job %s: %s; resuming from its last checkpoint", job.pk, exc)
            run_append_log(
                run=job.run, actor=job.owner, text=f"The portal's writer process was lost ({exc}); resuming.\n"
            )
            if not _start(job, hostname, task_id):  # running -> retrying -> running, unless cancelled meanwhile
                return job.state
    raise AssertionError("unreachable")


def _train(job: TrainingJob) -> str:
    from apps.training.engine import TrainConfig, train  # torch: imported only where a job trains
    from apps.training.engine.checkpoint import CheckpointError
    from apps.training.engine.config import InvalidParams, TrainingDiverged
    from apps.training.engine.data import DataError

    resume = None
    job.refresh_from_db(fields=["checkpoint", "checkpoint_epoch", "checkpoint_step", "started_at"])
    if job.checkpoint_id:
        resume = vault.blob_read(job.checkpoint)
        run_truncate_metrics(run=job.run, actor=job.owner, after_step=job.checkpoint_step)
        run_append_log(run=job.run, actor=job.owner, text=f"Resuming from the checkpoint of epoch {job.checkpoint_epoch} "
                                         f"(step {job.checkpoint_step}), attempt {job.attempts}.\n")  # fmt: skip
    else:
        run_append_log(run=job.run, actor=job.owner, text=f"Started on {job.worker or 'a worker'} ({job.device}).\n")
    remaining = job.max_runtime_s - (timezone.now() - job.started_at).total_seconds()
    if remaining <= 0:
        raise JobFailed(f"Max runtime of {job.max_runtime_s} s exceeded before the job could resume.")
    device, world_size = _device(job)
    X, y, dataset = load_arrays(job)
    config = TrainConfig(
        template=job.template,
        params=job.params,
        device=device,
        seed=job.seed,
        max_runtime_s=remaining,
        resume_from=resume,
        bf16=device.startswith("cuda"),
        X=X,
        y=y,
        dataset=dataset or None,
        num_threads=settings.TRAINING_CPU_THREADS if device == "cpu" else None,
    )
    callbacks = PortalCallbacks(job, pruner=pruner_for(job) if job.sweep_id else None)
    try:
        if world_size > 1:
            from apps.training.engine import train_distributed

            result = train_distributed(config, world_size, callbacks)
        else:
            result = train(config, callbacks)
    except (InvalidParams, DataError, CheckpointError, TrainingDiverged) as exc:
        _close_quietly(callbacks)
        raise JobFailed(str(exc)) from None
    except BaseException:
        _close_quietly(callbacks)
        raise
    callbacks.close()
    _account(job, result.resources, writer_cpu_s=callbacks.writer_cpu_s)
    if result.status == "cancelled":
        if callbacks.pruned_at is not None:
            job.result = {"pruned_at_epoch": callbacks.pruned_at, "history": result.history["epochs"]}
            job.metrics = _finite(result.metrics)
            reason = f"Pruned by the median pruner after epoch {callbacks.pruned_at}."
        else:
            reason = "Cancelled by its owner; it stopped between two steps."
        with transaction.atomic():
            job_transition(job=job, to=State.CANCELLED, error=reason, result=job.result, metrics=job.metrics)
        return job.state
    if result.status == "timeout":
        raise JobFailed(f"Max runtime of {job.max_runtime_s} s exceeded after {result.epochs_completed} epoch(s).")
    _finish(job, result)
    return job.state


def _close_quietly(callbacks: PortalCallbacks) -> None:
    try:
        callbacks.close()
    except Exception:
        log.warning("job %s: writing the last metrics failed", callbacks.job.pk, exc_info=True)


def _device(job: TrainingJob) -> tuple[str, int]:
    if job.device != "cuda":
        return "cpu", 1
    import torch

    if not torch.cuda.is_available():
        raise JobFailed("This GPU job reached a worker without CUDA; it will not run on the CPU silently.")
    return "cuda", max(1, torch.cuda.device_count())


def _finish(job: TrainingJob, result) -> None:
    from apps.training.engine import ParityError, export_result_onnx, export_safetensors, model_metadata  # torch, onnx

    try:
        onnx = export_result_onnx(result, tolerance=PARITY_TOLERANCE, exporter=settings.TRAINING_ONNX_EXPORTER)
    except ParityError as exc:
        job.result = {"parity_max_abs_diff": exc.max_abs_diff, "parity_threshold": exc.threshold}
        raise JobFailed(f"{exc}. The model was not registered.") from None
    weights = export_safetensors(result.model, model_metadata(result))
    summary = {**result.to_dict(), "onnx": onnx.summary()}
    summary.pop("params", None)
    metrics = _finite(result.metrics)
    version = _register(job, result, onnx.onnx_bytes, weights, metrics, onnx.summary())
    with transaction.atomic():
        run_log_batch(run=job.run, actor=job.owner, tags={"model_version": f"{version.model.name}:{version.version}"})
        run_artifact_add(  # the run lists the model file it produced (stored once, in the catalog)
            run=job.run,
            actor=job.owner,
            path="model.onnx",
            size=len(onnx.onnx_bytes),
            digest=f"sha256:{version.artifact.sha256}",
            uri=f"models:/{version.model.name}/{version.version}",
        )
        job_transition(
            job=job,
            to=State.SUCCEEDED,
            progress=1.0,
            metrics=metrics,
            result=summary,
            model_version=version,
            epochs_completed=result.epochs_completed,
        )


def _register(job: TrainingJob, result, onnx_bytes: bytes, weights: bytes, metrics: dict, onnx_parity: dict):
    model = RegisteredModel.objects.filter(name=job.model_name).first()
    # The team sees the model only while the owner is still in it (membership may change mid-job).
    team = job.team if job.team_id and team_member(job.owner, job.team) else None
    if model is None:
        model = catalog.model_create(
            actor=job.owner,
            name=job.model_name,
            description=f"Trained by the {job.template} template.",
            team=team.slug if team is not None else None,
        )
    else:  # an existing model of the owner's: its versions become visible to the job's team too
        share_existing_with_team(model, team=team, actor=job.owner)
    views = [v.get("name") for v in ((job.training_set.lineage or {}).get("views", []) if job.training_set else [])]
    lineage = {
        "run_id": str(job.run_id),
        "training_set": job.training_set.name if job.training_set else f"demo:{result.dataset.get('name')}",
        "training_data_digest": result.dataset.get("fingerprint", ""),
        "code_version": f"apps.training.engine {result.versions.get('engine', '')} template {job.template}",
        "feature_views": [v for v in views if v],
        "package_versions": {k: str(v) for k, v in result.versions.items()},
        "seed": result.seed,
    }
    return catalog.version_register(
        model=model,
        actor=job.owner,
        artifact=io.BytesIO(onnx_bytes),
        artifact_size=len(onnx_bytes),
        state_dict=io.BytesIO(weights),
        state_dict_size=len(weights),
        description=f"Training job {job.pk} ({job.template}), best epoch {result.best_epoch}.",
        tags=["training-job", job.template],
        metrics=metrics,
        lineage=lineage,
        framework="pytorch",
        onnx_parity=onnx_parity,
        region=job.run.region if job.run_id else job.region,
    )


def _finite(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}


def _account(job: TrainingJob, usage, *, writer_cpu_s: float = 0.0) -> None:
    job.wall_s += float(usage.wall_s or 0)
    job.cpu_s += float(usage.cpu_s or 0) + writer_cpu_s
    job.gpu_s += float(usage.gpu_s or 0)
    if usage.peak_rss_mb is not None:
        job.peak_mem_mb = max(job.peak_mem_mb or 0.0, float(usage.peak_rss_mb))
    if usage.peak_gpu_mem_mb is not None:
        job.peak_gpu_mem_mb = max(job.peak_gpu_mem_mb or 0.0, float(usage.peak_gpu_mem_mb))
    job.cost = Decimal(str(cost_of(job)))
    TrainingJob.objects.filter(pk=job.pk).update(
        wall_s=job.wall_s, cpu_s=job.cpu_s, gpu_s=job.gpu_s, peak_mem_mb=job.peak_mem_mb,
        peak_gpu_mem_mb=job.peak_gpu_mem_mb, cost=job.cost,
    )  # fmt: skip


def _fail(job: TrainingJob, message: str, detail: str = "") -> None:
    with transaction.atomic():
        current = TrainingJob.objects.select_for_update().values_list("state", flat=True).get(pk=job.pk)
        if current in TrainingJob.TERMINAL:
            return
        job_transition(job=job, to=State.FAILED, error=message[:5000], result=job.result or {})
        if job.run_id:
            run_append_log(run=job.run, actor=job.owner, text=f"FAILED: {message}\n{detail[-4000:]}")
