"""Training: templates, jobs (launch, follow, cancel, log) and your own scripts (register, versions)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from portal_client.transport import Progress

FINAL_STATES = ("succeeded", "failed", "cancelled")
LAUNCH_OPTIONS = (
    "resource_class", "region", "priority", "max_runtime_s", "max_memory_mb", "allow_cpu_fallback", "experiment",
    "experiment_name", "run_name", "model_name", "team", "seed", "max_queue_s",
)  # fmt: skip


class JobTimeout(TimeoutError):
    """`wait_job` gave up before the job finished; `job` is its last known state."""

    def __init__(self, job: dict, timeout: float):
        self.job = job
        super().__init__(f"Job {job.get('id')} is still {job.get('state')} after {timeout:g} s.")


class TrainingMixin:
    """Mixed into PortalClient, which supplies `request`, `upload` and the tracking calls."""

    def list_templates(self) -> list[dict]:
        return self.request("GET", "training/templates/")

    def launch_job(
        self,
        template: str | None = None,
        *,
        script: str | None = None,
        script_version: int | None = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        **options: Any,
    ) -> dict:
        """Queue a training job: a built-in `template`, or your registered `script` (its latest
        version unless `script_version`). `params` are the hyperparameters (a script gets them as
        `--name value` and in PORTAL_PARAMS); `data` is `{"dataset": ...}`, `{"training_set": id,
        "label": ..., "features": [...]}` or, for scripts, `{"artifact": "model:version"}`. Other
        keywords: resource_class (cpu/gpu), region, priority (0-9), max_runtime_s, max_memory_mb,
        allow_cpu_fallback, experiment, model_name, team, seed. Returns the job."""
        if (template is None) == (script is None):
            raise ValueError("Give a template or a script, one of them.")
        unknown = sorted(set(options) - set(LAUNCH_OPTIONS))
        if unknown:
            raise TypeError(f"Unknown launch option(s): {', '.join(unknown)}.")
        body: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
        if template is not None:
            body["template"] = template
        else:
            body["script"] = script
            if script_version is not None:
                body["script_version"] = int(script_version)
        if params:
            body["params"] = params
        if data:
            body["data"] = data
        return self.request("POST", "training/jobs/", json=body)

    def get_job(self, job_id: int) -> dict:
        """`state` (queued, running, retrying, succeeded, failed, cancelled), `progress`, `eta_s`,
        `run`, `model_version`, `error`, ..."""
        return self.request("GET", f"training/jobs/{int(job_id)}/")

    def list_jobs(self, *, state: str = "", page_size: int = 50) -> list[dict]:
        params: dict[str, Any] = {"page_size": page_size}
        if state:
            params["state"] = state
        return self.request("GET", "training/jobs/", params=params)["results"]

    def cancel_job(self, job_id: int) -> dict:
        """Ask the job to stop; it always ends `cancelled` (409 when it had already finished)."""
        return self.request("POST", f"training/jobs/{int(job_id)}/cancel")

    def job_log(self, job_id: int) -> str:
        """The last 64 KiB of the job's output (its run's log); empty before it has a run."""
        run = self.get_job(job_id).get("run")
        return self.get_run_log(run) if run else ""

    def wait_job(
        self,
        job_id: int,
        *,
        timeout: float | None = None,
        poll_s: float = 1.0,
        progress: Callable[[dict], None] | None = None,
    ) -> dict:
        """Poll the job until it succeeds, fails or is cancelled and return it; `progress(job)` is
        called on every poll. Raises JobTimeout after `timeout` seconds (the job keeps running)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if progress:
                progress(job)
            if job.get("state") in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise JobTimeout(job, timeout)
            time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))

    # --- scripts (your own training code) --------------------------------------------------------
    def list_scripts(self) -> list[dict]:
        return self._all_pages("training/scripts/", {"page_size": 100})

    def get_script(self, name: str) -> dict:
        return self.request("GET", f"training/scripts/{quote(name, safe='')}/")

    def register_script(
        self,
        name: str,
        path: str | os.PathLike,
        *,
        entry_point: str | None = None,
        description: str | None = None,
        team: str | None = None,
        progress: Progress | None = None,
    ) -> dict:
        """Register a training script: a `.py` file or an archive of a project folder (`.zip`,
        `.tar.gz`), stored in the vault with its digest as version 1. `entry_point` names the file
        to run inside an archive."""
        fields = {"name": name, "entry_point": entry_point, "description": description, "team": team}
        return self.upload("POST", "training/scripts/", fields=fields, files={"file": path}, progress=progress)

    def upload_script_version(
        self,
        name: str,
        path: str | os.PathLike,
        *,
        entry_point: str | None = None,
        progress: Progress | None = None,
    ) -> dict:
        """Upload the next version of a registered script."""
        return self.upload(
            "POST",
            f"training/scripts/{quote(name, safe='')}/versions/",
            fields={"entry_point": entry_point},
            files={"file": path},
            progress=progress,
        )

    def list_script_versions(self, name: str) -> list[dict]:
        return self._all_pages(f"training/scripts/{quote(name, safe='')}/versions/", {"page_size": 100})
