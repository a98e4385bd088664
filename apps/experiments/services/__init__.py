"""Writes for experiments and runs, split by sub-domain; import the public names from here.

Every service takes the acting user (`actor`) and checks it through `apps.core.permissions`:
creating needs the role's add permission, everything that changes a run needs change rights on
its experiment (runs have no access list of their own). Pages, the API, the seed command and the
training app (which passes the job's owner from its worker) all call these. Live updates leave
after commit through `apps.experiments.live` (coalesced, on the one broadcaster).

- `experiments`: create and edit experiments, save a user's runs-table columns.
- `runs`: run lifecycle (create, update, status moves, progress, stale flag), logging of metrics,
  params, tags, system metrics and the log tail, and truncating metrics before a resume.
- `artifacts`: artifact paths and size limit, recording, uploading to the vault and opening them.
- `retention`: purging run artifacts past their retention window (never a model version's lineage).
"""

from apps.experiments.services.artifacts import (
    ARTIFACT_PURPOSE,
    clean_artifact_path,
    max_artifact_bytes,
    run_artifact_add,
    run_artifact_open,
    run_artifact_upload,
)
from apps.experiments.services.experiments import (
    MAX_TABLE_COLUMNS,
    experiment_create,
    experiment_update,
    runs_table_columns_save,
)
from apps.experiments.services.retention import run_artifacts_purge
from apps.experiments.services.runs import (
    COPY_THRESHOLD,
    LOG_TAIL_CHARS,
    TOUCH_EVERY_S,
    TRANSITIONS,
    run_append_log,
    run_create,
    run_delete,
    run_log_batch,
    run_log_system_metrics,
    run_report_progress,
    run_set_status,
    run_tag_delete,
    run_truncate_metrics,
    run_update,
    runs_mark_stale,
)

__all__ = [
    "ARTIFACT_PURPOSE",
    "COPY_THRESHOLD",
    "LOG_TAIL_CHARS",
    "MAX_TABLE_COLUMNS",
    "TOUCH_EVERY_S",
    "TRANSITIONS",
    "clean_artifact_path",
    "experiment_create",
    "experiment_update",
    "max_artifact_bytes",
    "run_append_log",
    "run_artifact_add",
    "run_artifacts_purge",
    "run_artifact_open",
    "run_artifact_upload",
    "run_create",
    "run_delete",
    "run_log_batch",
    "run_log_system_metrics",
    "run_report_progress",
    "run_set_status",
    "run_tag_delete",
    "run_truncate_metrics",
    "run_update",
    "runs_mark_stale",
    "runs_table_columns_save",
]
