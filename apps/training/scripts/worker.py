"""The worker side of a script job: run the user's script in its own process group and folder, with
a minimal environment and a job-scoped token, stream its output to the run's log, enforce cancel,
max runtime and the memory limit, then register its ONNX output.

Only `apps.training.runner` calls `script_job_run` (after `_start` moved the job to running); the
job's state changes go through `job_transition`, its failures through the runner (`ScriptFailed`).
The token is revoked however the job ends (success, failure, cancel, an error here); a worker
killed outright leaves it to expire at the job's max runtime.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import psutil
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import ApiToken
from apps.accounts.services import token_create, token_revoke
from apps.core.processes import die_with_parent
from apps.experiments.services import run_append_log
from apps.training.models import TrainingJob
from apps.training.scripts.outputs import OutputError, onnx_output, output_register
from apps.training.scripts.workspace import Workspace, WorkspaceError, workspace_prepare
from apps.training.services import cancel_requested, job_transition

log = logging.getLogger(__name__)
State = TrainingJob.State
FLUSH_EVERY_S = 0.5
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 8000
LOG_CHUNK_MAX = 60_000  # under the run log's 64 KiB per append


class ScriptFailed(Exception):
    """The script job failed, with a reason for its owner (the runner fails the job with it)."""


def script_job_run(job: TrainingJob) -> str:
    """Run the job's script to its end; returns the job's final state. Raises `ScriptFailed`."""
    _revoke(job)  # a redelivered job's earlier token (its worker was lost) stops working first
    with tempfile.TemporaryDirectory(prefix=f"portal-script-{job.pk}-") as folder:
        try:
            space = workspace_prepare(job, Path(folder))
        except WorkspaceError as exc:
            raise ScriptFailed(str(exc)) from None
        key = _token_for(job)
        try:
            outcome = _supervise(job, space, key)
        finally:
            _revoke(job)
        return _conclude(job, space, outcome)


def _token_for(job: TrainingJob) -> str:
    """A read+write token of the job's owner expiring at the end of its max runtime (plus a minute)."""
    token, key = token_create(user=job.owner, name=f"training-job-{job.pk}", scopes=["read", "write"], expires_days=1)
    token.expires_at = timezone.now() + timedelta(seconds=job.max_runtime_s + 60)
    token.save(update_fields=["expires_at"])
    TrainingJob.objects.filter(pk=job.pk).update(api_token=token)
    job.api_token = token
    return key


def _revoke(job: TrainingJob) -> None:
    token_id = TrainingJob.objects.filter(pk=job.pk).values_list("api_token", flat=True).first()
    token = ApiToken.objects.filter(pk=token_id).first() if token_id else None
    if token is not None and token.revoked_at is None:
        token_revoke(token=token, actor=job.owner)


def script_environment(job: TrainingJob, space: Workspace, key: str) -> dict[str, str]:
    """The script's whole environment: nothing of the worker's (no secrets, no database or vault
    settings), only a PATH to the training Python (TRAINING_SCRIPT_PYTHON), its folder as HOME, and
    the portal's variables."""
    url = settings.PORTAL_PUBLIC_URL
    return {
        "PATH": f"{Path(settings.TRAINING_SCRIPT_PYTHON).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(space.root),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PORTAL_URL": url,
        "PORTAL_TOKEN": key,
        "MLFLOW_TRACKING_URI": url,
        "MLFLOW_TRACKING_TOKEN": key,
        "MLFLOW_RUN_ID": str(job.run_id or ""),
        "MLFLOW_EXPERIMENT_ID": str(job.experiment_id),
        "PORTAL_JOB_ID": str(job.pk),
        "PORTAL_PARAMS": json.dumps(job.params or {}, sort_keys=True),
        "PORTAL_DATA": str(space.data_path or ""),
        "PORTAL_OUTPUTS": str(space.outputs),
    }


def script_arguments(params: dict) -> list[str]:
    """`--name value` per parameter (booleans and numbers as JSON: true, 0.01)."""
    args: list[str] = []
    for name, value in (params or {}).items():
        args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
    return args


class _Output:
    """What the script writes to its pipes, read in chunks by two threads (a progress bar without
    newlines still streams); the supervisor drains it to the run log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pending: list[str] = []
        self.stderr_tail = ""

    def read(self, pipe, is_stderr: bool) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        while chunk := os.read(pipe.fileno(), 65536):
            text = decoder.decode(chunk)
            with self.lock:
                self.pending.append(text)
                if is_stderr:
                    self.stderr_tail = (self.stderr_tail + text)[-STDERR_TAIL_CHARS:]
        pipe.close()

    def drain(self) -> str:
        with self.lock:
            text, self.pending = "".join(self.pending), []
        return text

    def last_stderr_lines(self) -> str:
        with self.lock:
            return "\n".join(self.stderr_tail.rstrip("\n").splitlines()[-STDERR_TAIL_LINES:])


def _flush(job: TrainingJob, output: _Output) -> None:
    """Append what arrived since the last flush; the run keeps its last 64 KiB, so a flood is cut."""
    text = output.drain()
    if len(text) > LOG_CHUNK_MAX:
        text = f"[... {len(text) - LOG_CHUNK_MAX:,} characters of output not kept ...]\n" + text[-LOG_CHUNK_MAX:]
    run_append_log(run=job.run, actor=job.owner, text=text)


def _group_rss_mb(pid: int) -> float:
    """Resident memory of the script and every process it started (its process group), in MB."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total / (1 << 20)


def _kill_group(pgid: int, process: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the whole group, SIGKILL what is left after `grace_s` (children included)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            process.poll()
            if not _group_alive(pgid):
                return
            time.sleep(0.05)
    process.poll()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie leader (not yet reaped) still counts; the caller's poll() reaps it
    return True


def _dies_with_worker() -> None:
    """In the script's process, before it starts: a worker killed outright (SIGKILL, OOM) takes the
    script with it instead of leaving it running unsupervised; the redelivered job starts it again."""
    die_with_parent(signal.SIGKILL)


def _supervise(job: TrainingJob, space: Workspace, key: str) -> tuple[str, str, int | None]:
    """Run the script; (why it ended: exited/cancelled/runtime/memory, stderr tail, exit code)."""
    command = [settings.TRAINING_SCRIPT_PYTHON, str(space.entry), *script_arguments(job.params)]
    process = subprocess.Popen(  # noqa: S603 (the worker's own Python on the owner's script, no shell)
        command, cwd=space.root, env=script_environment(job, space, key), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, close_fds=True,
        preexec_fn=_dies_with_worker,
    )  # fmt: skip
    output = _Output()
    readers = [
        threading.Thread(target=output.read, args=(process.stdout, False), daemon=True),
        threading.Thread(target=output.read, args=(process.stderr, True), daemon=True),
    ]
    for reader in readers:
        reader.start()
    # A redelivered job (its first worker was lost) has only what is left of its max runtime.
    spent = (timezone.now() - job.started_at).total_seconds() if job.started_at else 0.0
    started, reason = time.monotonic() - max(0.0, spent), "exited"
    run_append_log(run=job.run, actor=job.owner, text=f"Running {job.script_version} ({job.script_version.digest}).\n")
    while process.poll() is None:
        time.sleep(FLUSH_EVERY_S)
        _flush(job, output)
        if cancel_requested(job):
            reason = "cancelled"
        elif time.monotonic() - started > job.max_runtime_s:
            reason = "runtime"
        elif job.max_memory_mb and _group_rss_mb(process.pid) > job.max_memory_mb:
            reason = "memory"
        if reason != "exited":
            break
    # Always end the whole group: the script may have left children behind, even on success.
    _kill_group(process.pid, process, float(settings.TRAINING_SCRIPT_KILL_GRACE_S) if reason != "exited" else 0.0)
    process.wait()
    for reader in readers:
        reader.join(timeout=5)
    _flush(job, output)
    return reason, output.last_stderr_lines(), process.returncode


def _conclude(job: TrainingJob, space: Workspace, outcome: tuple[str, str, int | None]) -> str:
    reason, stderr_tail, code = outcome
    job.refresh_from_db(fields=["started_at"])
    job.wall_s = (timezone.now() - job.started_at).total_seconds() if job.started_at else 0.0
    TrainingJob.objects.filter(pk=job.pk).update(wall_s=job.wall_s)
    if reason == "cancelled":
        with transaction.atomic():
            job_transition(job=job, to=State.CANCELLED, error="Cancelled by its owner; its process group was stopped.")
        return job.state
    if reason == "runtime":
        raise ScriptFailed(f"The script exceeded its maximum runtime of {job.max_runtime_s} s.")
    if reason == "memory":
        raise ScriptFailed(f"The script exceeded its memory limit of {job.max_memory_mb} MB.")
    if code != 0:
        raise ScriptFailed(f"The script exited with code {code}. Last lines of stderr:\n{stderr_tail}".rstrip())
    found = onnx_output(space.outputs)
    version = None
    if found is not None:
        try:
            version = output_register(job, found, data_digest=space.data_digest)
        except OutputError as exc:
            raise ScriptFailed(str(exc)) from None
    with transaction.atomic():
        job_transition(
            job=job, to=State.SUCCEEDED, progress=1.0, model_version=version,
            result={"script": str(job.script_version), "digest": job.script_version.digest,
                    "data_digest": space.data_digest, "exit_code": code,
                    "output": f"outputs/{found.relative_to(space.outputs)}" if found else None},
        )  # fmt: skip
    return job.state
