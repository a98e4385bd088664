"""Writes for experiments and runs: the one place their tables change.

Every service takes the acting user (`actor`) and checks it through `apps.core.permissions`:
creating needs the role's add permission, everything that changes a run needs change rights on
its experiment (runs have no access list of their own). Pages, the API, the seed command and the
training app (which passes the job's owner from its worker) all call these. Live updates leave
after commit through `apps.experiments.live` (coalesced, on the one broadcaster).
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from datetime import datetime, timedelta
from typing import BinaryIO

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from apps.core import vault
from apps.core.audit import audit_event
from apps.core.errors import Conflict, IntegrityFailure, NotFound, TooLarge
from apps.core.permissions import grant_owner, require
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.experiments import live
from apps.experiments.models import (
    Experiment,
    ExperimentKey,
    MetricPoint,
    Run,
    RunArtifact,
    RunMetricSummary,
    RunParam,
    RunsTableColumns,
    RunTag,
)
from apps.experiments.validation import (
    Point,
    as_number,
    check_key,
    clean_metrics,
    clean_params,
    clean_tags,
    now_ms,
)

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 64 * 1024
TRANSITIONS = {
    Run.Status.QUEUED: {Run.Status.RUNNING, Run.Status.FAILED, Run.Status.KILLED},
    Run.Status.RUNNING: {Run.Status.FINISHED, Run.Status.FAILED, Run.Status.KILLED},
}
COPY_THRESHOLD = 50  # PostgreSQL: batches this big go through COPY
ARTIFACT_PURPOSE = "experiments.artifact"
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# A run's sign of life is written at most this often (a trainer logging 50 batches a second must
# not rewrite its run row 50 times a second); far below any sensible EXPERIMENTS_STALE_AFTER_S.
TOUCH_EVERY_S = 5
MAX_TABLE_COLUMNS = 30


# --- experiments --------------------------------------------------------------------------------
def experiment_create(*, actor, name: str, description: str = "", tags=None, team: str | None = None) -> Experiment:
    """Create an experiment owned by `actor` (who needs the role's add permission).

    `team` is a team slug the actor belongs to: the team becomes a viewer of the experiment (as
    for every kind, docs/SECURITY.md); the owner shares it as editor to let the team log runs."""
    require(actor, "add", Experiment)
    team_obj = team_for_create(actor=actor, slug=team)
    tags = clean_tags(tags)
    experiment = Experiment(name=name, description=description or "", tags=tags, owner=actor, team=team_obj)
    experiment.full_clean(exclude=["owner", "team"])
    with transaction.atomic():
        try:
            experiment.save()
        except IntegrityError:
            raise ValidationError(
                {"name": [f"An experiment named {name!r} already exists; pick another name."]}
            ) from None
        grant_owner(experiment)
        share_with_team_on_create(experiment, team_obj)
    return experiment


def experiment_update(*, experiment: Experiment, actor, description=None, tags=None) -> Experiment:
    """Change the description and/or tags (change rights on the experiment)."""
    require(actor, "change", experiment)
    fields = []
    if description is not None:
        experiment.description = description
        fields.append("description")
    if tags is not None:
        experiment.tags = clean_tags(tags)
        fields.append("tags")
    if fields:
        experiment.save(update_fields=[*fields, "updated_at"])
    return experiment


# --- runs ---------------------------------------------------------------------------------------
def run_create(
    *,
    experiment: Experiment,
    actor,
    name: str,
    source: str = Run.Source.JOB,
    params=None,
    tags=None,
    code_version: str = "",
    notes: str = "",
    status: str = Run.Status.RUNNING,
) -> Run:
    """Start a run in `experiment` (the actor needs change rights on it and the add_run role)."""
    require(actor, "change", experiment)
    require(actor, "add", Run)
    if source not in Run.Source.values:
        raise ValidationError({"source": [f"Use one of {', '.join(Run.Source.values)}."]})
    if status not in (Run.Status.QUEUED, Run.Status.RUNNING):
        raise ValidationError({"status": ["A new run is either queued or running."]})
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationError({"name": ["Give the run a name of 1 to 200 characters."]})
    params, tags = clean_params(params), clean_tags(tags)
    now = timezone.now()
    with transaction.atomic():
        run = Run.objects.create(
            experiment=experiment,
            owner=actor,
            name=name,
            source=source,
            status=status,
            code_version=(code_version or "")[:200],
            notes=notes or "",
            params=params,
            tags=tags,
            started_at=now if status == Run.Status.RUNNING else None,
            last_seen_at=now,
        )
        RunParam.objects.bulk_create(
            [RunParam(run=run, key=k, value=v, value_num=as_number(v)) for k, v in params.items()]
        )
        RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in tags.items()])
        _remember_keys(experiment.pk, ExperimentKey.Kind.PARAM, params)
        _publish_status(run)
    return run


@transaction.atomic
def run_update(*, run: Run, actor, name=None, notes=None, status=None, progress=None) -> Run:
    """Rename, annotate and/or move the run's status and progress, in one transaction (change
    rights on its experiment); the status rules are `run_set_status`'s."""
    require(actor, "change", run.experiment)
    fields = []
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            raise ValidationError({"name": ["Give the run a name of 1 to 200 characters."]})
        run.name = name
        fields.append("name")
    if notes is not None:
        run.notes = notes
        fields.append("notes")
    if fields:
        run.save(update_fields=[*fields, "updated_at"])
    if status is not None or progress is not None:
        _set_status(run, status, progress)
    return run


def run_set_status(*, run: Run, actor, status: str | None = None, progress: float | None = None) -> Run:
    """Move a run along queued -> running -> finished/failed/killed and/or report progress (0..1)
    (change rights on its experiment; `Conflict` for a move the current status does not allow).

    A status change is audited; progress alone is not (it may be reported every step).
    """
    require(actor, "change", run.experiment)
    return _set_status(run, status, progress)


def _set_status(run: Run, status: str | None, progress: float | None) -> Run:
    if progress is not None:
        if isinstance(progress, bool) or not isinstance(progress, int | float) or not math.isfinite(progress):
            raise ValidationError({"progress": ["Progress is a number between 0 and 1."]})
        if not 0 <= progress <= 1:
            raise ValidationError({"progress": ["Progress is a number between 0 and 1."]})
    if status is not None and status not in Run.Status.values:
        raise ValidationError({"status": [f"Use one of {', '.join(Run.Status.values)}."]})
    with transaction.atomic():
        current = Run.objects.select_for_update().only("status").get(pk=run.pk).status
        run.status = current
        if status is not None and status != current:
            if status not in TRANSITIONS.get(current, set()):
                raise Conflict(f"A {current} run cannot become {status}.")
            now = timezone.now()
            run.status = status
            run.last_seen_at, run.stale = now, False
            fields = ["status", "updated_at", "last_seen_at", "stale"]
            if status == Run.Status.RUNNING and run.started_at is None:
                run.started_at = now
                fields.append("started_at")
            if status in Run.TERMINAL:
                run.ended_at = now
                fields.append("ended_at")
                if status == Run.Status.FINISHED:
                    progress = 1.0 if progress is None else progress
            if progress is not None:
                run.progress = float(progress)
                fields.append("progress")
            run.save(update_fields=fields)
        elif progress is not None:
            run.progress = float(progress)
            Run.objects.filter(pk=run.pk).update(progress=run.progress)
            _touch(run)
        _publish_status(run)
    return run


def _touch(run: Run) -> None:
    """Record a sign of life from the run's client and clear its stale flag (one conditional
    UPDATE, written at most every TOUCH_EVERY_S); a run that was stale announces it is back."""
    now = timezone.now()
    due = Q(stale=True) | Q(last_seen_at__isnull=True) | Q(last_seen_at__lt=now - timedelta(seconds=TOUCH_EVERY_S))
    if Run.objects.filter(due, pk=run.pk).update(last_seen_at=now, stale=False) and run.stale:
        run.stale = False
        _publish_status(run)
    run.last_seen_at = now


def runs_mark_stale(*, now: datetime | None = None, runs: QuerySet[Run] | None = None) -> int:
    """Flag the running runs whose client has been silent (no log batch, log line, progress or
    status report) for `settings.EXPERIMENTS_STALE_AFTER_S`; returns how many were flagged.

    Stale runs stay "running" (their client may come back, which clears the flag) but are shown
    apart and never counted as training. Maintenance done by the system (the
    `experiments.mark_stale_runs` task), so no actor; `runs` narrows the candidates (the demo seed)."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.EXPERIMENTS_STALE_AFTER_S)
    silent = Q(last_seen_at__lt=cutoff) | Q(last_seen_at__isnull=True, created_at__lt=cutoff)
    candidates = (runs if runs is not None else Run.objects.all()).filter(
        silent, status=Run.Status.RUNNING, stale=False
    )
    with transaction.atomic():
        ids = list(candidates.values_list("pk", flat=True))
        if not ids:
            return 0
        # The same conditions again in the UPDATE: a batch logged since the read keeps its run live.
        flagged = Run.objects.filter(silent, pk__in=ids, status=Run.Status.RUNNING, stale=False).update(stale=True)
        for run in Run.objects.filter(pk__in=ids, stale=True).only(
            "pk", "experiment_id", "status", "progress", "stale", "ended_at"
        ):
            _publish_status(run)
    if flagged:
        log.info("flagged %d run(s) stale: silent for over %ss", flagged, settings.EXPERIMENTS_STALE_AFTER_S)
    return flagged


def run_report_progress(*, run: Run, actor, progress: float) -> Run:
    """Progress only (0..1), from the process that runs the run: one UPDATE and a live status
    message; no row lock, because the caller owns the run's status (a training job's writer
    thread reports this about once a second). Change rights on the experiment."""
    require(actor, "change", run.experiment)
    if isinstance(progress, bool) or not isinstance(progress, int | float) or not 0 <= progress <= 1:
        raise ValidationError({"progress": ["Progress is a number between 0 and 1."]})
    run.progress, run.last_seen_at, run.stale = float(progress), timezone.now(), False
    Run.objects.filter(pk=run.pk).update(progress=run.progress, last_seen_at=run.last_seen_at, stale=False)
    transaction.on_commit(lambda: _publish_status(run))
    return run


def _publish_status(run: Run) -> None:
    message = live.status_message(run)
    experiment_id = run.experiment_id
    transaction.on_commit(lambda: live.publisher.publish(run.pk, experiment_id, status=message))


def run_log_batch(*, run: Run, actor, metrics=None, params=None, tags=None) -> dict[str, int]:
    """Validate then write metric points, params and tags in one transaction (change rights on
    the run's experiment).

    Params are write-once (logging the same value again is fine; a different value is a 409).
    Tags may be overwritten. Summaries (latest/min/max per key) are merged in the same
    transaction by one upsert; the live update goes out after commit.
    """
    require(actor, "change", run.experiment)
    points = clean_metrics(metrics)
    params = clean_params(params)
    tags = clean_tags(tags)
    if not (points or params or tags):
        raise ValidationError({"detail": ["Nothing to log: send metrics, params and/or tags."]})
    experiment_id = run.experiment_id
    with transaction.atomic():
        if params or tags:  # the JSON columns are read-modify-write: lock the run row
            locked = Run.objects.select_for_update().only("id", "params", "tags", "experiment_id").get(pk=run.pk)
            _write_params_tags(locked, params, tags)
            run.params, run.tags = locked.params, locked.tags
        if points:
            _insert_points(run.pk, points)
            _update_summaries(run.pk, experiment_id, points)
            transaction.on_commit(lambda: live.publisher.publish(run.pk, experiment_id, points=points))
        _touch(run)
    return {"metrics": len(points), "params": len(params), "tags": len(tags)}


def run_truncate_metrics(*, run: Run, actor, after_step: int) -> int:
    """Delete the run's metric points logged after `after_step` and rebuild the summaries of the
    keys that lost points; returns the number of points deleted. Change rights on the experiment.

    Used before a training job resumes from a checkpoint, so the run ends with one point per step."""
    require(actor, "change", run.experiment)
    if isinstance(after_step, bool) or not isinstance(after_step, int):
        raise ValidationError({"after_step": ["after_step is a whole number."]})
    with transaction.atomic():
        doomed = MetricPoint.objects.filter(run=run, step__gt=after_step)
        keys = sorted(set(doomed.values_list("key", flat=True)))
        if not keys:
            return 0
        deleted = doomed.delete()[0]
        for key in keys:
            _rebuild_summary(run, key)
    return deleted


def _rebuild_summary(run: Run, key: str) -> None:
    series = MetricPoint.objects.filter(run=run, key=key)
    agg = series.aggregate(n=Count("id"), low=Min("value"), high=Max("value"))
    last = series.order_by("-step", "-id").first()
    summaries = RunMetricSummary.objects.filter(run=run, key=key)
    if last is None:
        summaries.delete()
        return
    summaries.update(
        count=agg["n"], min=agg["low"], max=agg["high"], last=last.value, last_step=last.step,
        last_timestamp=last.timestamp,
    )  # fmt: skip


def _write_params_tags(run: Run, params: dict[str, str], tags: dict[str, str]) -> None:
    clashes = [
        f"{k} (logged {run.params[k]!r}, now {v!r})"
        for k, v in params.items()
        if k in run.params and run.params[k] != v
    ]
    if clashes:
        raise Conflict(f"Params cannot change once logged: {', '.join(clashes)}. Start a new run to try other values.")
    new_params = {k: v for k, v in params.items() if k not in run.params}
    RunParam.objects.bulk_create(
        [RunParam(run=run, key=k, value=v, value_num=as_number(v)) for k, v in new_params.items()]
    )
    if tags:
        RunTag.objects.bulk_create(
            [RunTag(run=run, key=k, value=v) for k, v in tags.items()],
            update_conflicts=True,
            unique_fields=["run", "key"],
            update_fields=["value"],
        )
    changed_tags = {k: v for k, v in tags.items() if run.tags.get(k) != v}
    if new_params or changed_tags:
        run.params = {**run.params, **new_params}
        run.tags = {**run.tags, **changed_tags}
        run.save(update_fields=["params", "tags", "updated_at"])  # audited: params and tags are run changes


def _insert_points(run_id: int, points: list[Point]) -> None:
    table = MetricPoint._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(points) >= COPY_THRESHOLD:
            # One COPY text payload: keys are validated (no tab, newline or backslash can occur),
            # values are Python floats (repr round-trips exactly), NULL is \N.
            null = "\\N"
            payload = "".join(
                f"{run_id}\t{p.key}\t{p.step}\t{null if p.value is None else repr(p.value)}\t{p.timestamp}\n"
                for p in points
            )
            with cursor.cursor.copy(f"COPY {table} (run_id, key, step, value, timestamp) FROM STDIN") as copy:
                copy.write(payload)
        else:
            rows = [(run_id, p.key, p.step, p.value, p.timestamp) for p in points]
            cursor.executemany(
                f"INSERT INTO {table} (run_id, key, step, value, timestamp) VALUES (%s, %s, %s, %s, %s)", rows
            )


def _remember_keys(experiment_id: int, kind: str, keys) -> None:
    if keys:
        ExperimentKey.objects.bulk_create(
            [ExperimentKey(experiment_id=experiment_id, kind=kind, key=k) for k in keys], ignore_conflicts=True
        )


_SUMMARY_UPSERT = """
INSERT INTO {t} (run_id, key, last, last_step, last_timestamp, min, max, count) VALUES {values}
ON CONFLICT (run_id, key) DO UPDATE SET
  last = CASE WHEN excluded.last_step >= {t}.last_step THEN excluded.last ELSE {t}.last END,
  last_timestamp = CASE WHEN excluded.last_step >= {t}.last_step THEN excluded.last_timestamp ELSE {t}.last_timestamp END,
  last_step = CASE WHEN excluded.last_step >= {t}.last_step THEN excluded.last_step ELSE {t}.last_step END,
  min = CASE WHEN {t}.min IS NULL OR excluded.min < {t}.min THEN excluded.min ELSE {t}.min END,
  max = CASE WHEN {t}.max IS NULL OR excluded.max > {t}.max THEN excluded.max ELSE {t}.max END,
  count = {t}.count + excluded.count
RETURNING key, count
"""


def _update_summaries(run_id: int, experiment_id: int, points: list[Point]) -> None:
    """Merge this batch's latest/min/max/count per key into the summaries in one statement (row
    locks taken by the upsert make concurrent batches for the same run merge correctly)."""
    batch: dict[str, list] = {}  # key -> [last, last_step, last_ts, min, max, n]
    for p in points:
        s = batch.get(p.key)
        if s is None:
            batch[p.key] = s = [p.value, p.step, p.timestamp, None, None, 0]
        elif p.step >= s[1]:
            s[0], s[1], s[2] = p.value, p.step, p.timestamp
        s[5] += 1
        if p.value is not None:
            if s[3] is None or p.value < s[3]:
                s[3] = p.value
            if s[4] is None or p.value > s[4]:
                s[4] = p.value
    args: list = []
    for key, (last, last_step, last_ts, low, high, n) in batch.items():
        args += [run_id, key, last, last_step, last_ts, low, high, n]
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(batch))
    sql = _SUMMARY_UPSERT.format(t=RunMetricSummary._meta.db_table, values=values)
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        returned = cursor.fetchall()
    new_keys = [key for key, count in returned if count == batch[key][5]]  # first points of this key in the run
    _remember_keys(experiment_id, ExperimentKey.Kind.METRIC, new_keys)


def run_log_system_metrics(
    *,
    run: Run,
    actor,
    cpu_percent: float | None = None,
    memory_percent: float | None = None,
    gpu_percent: float | None = None,
    gpu_memory_percent: float | None = None,
    step: int | None = None,
) -> dict[str, int]:
    """Worker resource use, stored as metrics under `system/` (charted apart on the run page)."""
    values = {
        "system/cpu_percent": cpu_percent,
        "system/memory_percent": memory_percent,
        "system/gpu_percent": gpu_percent,
        "system/gpu_memory_percent": gpu_memory_percent,
    }
    if step is None:
        started = run.started_at or run.created_at or timezone.now()
        step = max(0, int((timezone.now() - started).total_seconds()))
    ts = now_ms()
    metrics = [{"key": k, "value": v, "step": step, "timestamp": ts} for k, v in values.items() if v is not None]
    return run_log_batch(run=run, actor=actor, metrics=metrics)


def run_append_log(*, run: Run, actor, text: str) -> None:
    """Append worker output to the run's log tail (the last 64 KiB are kept) and stream it
    (change rights on the run's experiment; empty text is a no-op)."""
    require(actor, "change", run.experiment)
    if not isinstance(text, str) or not text:
        return
    # Databases store neither NUL nor lone surrogates (JSON "\ud800"): drop and replace them.
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if not text:
        return
    with transaction.atomic():
        locked = Run.objects.select_for_update().only("log_tail").get(pk=run.pk)
        tail = (locked.log_tail + text)[-LOG_TAIL_CHARS:]
        Run.objects.filter(pk=run.pk).update(log_tail=tail)
        run.log_tail = tail
        _touch(run)
        experiment_id = run.experiment_id
        transaction.on_commit(lambda: live.publisher.publish(run.pk, experiment_id, log_text=text[-LOG_TAIL_CHARS:]))


# --- the runs table's columns ------------------------------------------------------------------
def runs_table_columns_save(*, actor, experiment: Experiment, metrics, params) -> RunsTableColumns:
    """Remember the metric and param columns `actor` chose for `experiment`'s runs table (anyone
    who may view the experiment; a choice is personal and changes nothing others see)."""
    require(actor, "view", experiment)
    chosen = {}
    for field, keys in (("metrics", metrics), ("params", params)):
        keys = list(dict.fromkeys(keys or []))
        if len(keys) > MAX_TABLE_COLUMNS:
            raise ValidationError({field: [f"Choose at most {MAX_TABLE_COLUMNS} columns."]})
        problems = [p for p in map(check_key, keys) if p]
        if problems:
            raise ValidationError({field: problems[:5]})
        chosen[field] = keys
    columns, _ = RunsTableColumns.objects.update_or_create(user=actor, experiment=experiment, defaults=chosen)
    return columns


# --- artifacts ----------------------------------------------------------------------------------
def max_artifact_bytes() -> int:
    return settings.EXPERIMENTS_MAX_ARTIFACT_BYTES


def clean_artifact_path(path) -> str:
    """A relative path of 1 to 500 characters: no leading '/', no empty, '.' or '..' parts."""
    path = path.strip() if isinstance(path, str) else ""
    parts = path.split("/")
    if (
        not path
        or len(path) > 500
        or path.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or _CONTROL_RE.search(path)
    ):
        raise ValidationError(
            {"path": ["Give a relative artifact path without '..' (at most 500 characters), e.g. plots/loss.png."]}
        )
    return path


def _replace_artifact(run: Run, path: str, **fields) -> RunArtifact:
    """Inside a transaction: drop the run's artifact at `path` (its vault blob goes with it, see
    models._delete_artifact_blob) and record the new one. The run row is locked so that two
    uploads of the same path queue instead of clashing on the unique constraint."""
    Run.objects.select_for_update().only("id").get(pk=run.pk)
    for old in RunArtifact.objects.filter(run=run, path=path):
        old.delete()
    return RunArtifact.objects.create(run=run, path=path, **fields)


def run_artifact_add(*, run: Run, actor, path: str, size: int, digest: str = "", uri: str = "") -> RunArtifact:
    """Record a file the run produced that lives outside the portal (`uri`); see
    `run_artifact_upload` for files stored in the vault. Change rights on the experiment."""
    require(actor, "change", run.experiment)
    path = clean_artifact_path(path)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValidationError({"size": ["Size is a non-negative number of bytes."]})
    with transaction.atomic():
        return _replace_artifact(run, path, size=size, digest=(digest or "")[:80], uri=(uri or "")[:1000])


def run_artifact_upload(*, run: Run, actor, src: BinaryIO, size: int, path: str) -> RunArtifact:
    """Encrypt `src` into the vault and record it as the run's artifact at `path`, replacing (and
    deleting) any artifact already there. On any failure nothing is left behind: no row, no file."""
    require(actor, "change", run.experiment)
    path = clean_artifact_path(path)
    limit = max_artifact_bytes()
    if size > limit:
        raise TooLarge(f"The file is {size:,} bytes; the limit is {limit:,} bytes (EXPERIMENTS_MAX_ARTIFACT_BYTES).")
    # Encrypt before the transaction: a large upload must not hold the database lock.
    name, result = vault.blob_write(src, purpose=ARTIFACT_PURPOSE)
    try:
        if result.plaintext_size > limit:  # the declared size was wrong
            raise TooLarge(f"The file is over the limit of {limit:,} bytes (EXPERIMENTS_MAX_ARTIFACT_BYTES).")
        with transaction.atomic():
            blob = vault.blob_record(name, result, purpose=ARTIFACT_PURPOSE)
            artifact = _replace_artifact(
                run, path, size=result.plaintext_size, digest=f"sha256:{result.sha256}", blob=blob
            )
            audit_event(
                actor=actor,
                event="artifact.upload",
                obj=artifact,
                data={"run": run.pk, "path": path, "sha256": result.sha256, "size": result.plaintext_size},
            )
    except BaseException:
        vault.blob_discard(name)
        raise
    return artifact


def run_artifact_open(*, artifact: RunArtifact, actor, request=None):
    """Check permission, start decrypting (the first chunk is checked now) and audit the download.
    Returns (chunks, size, filename).

    Raises `NotFound` for an artifact kept outside the portal (it has only a `uri`) and
    `IntegrityFailure`, audited, when the stored file was tampered with (no byte is sent)."""
    run = artifact.run
    require(actor, "view", run.experiment)
    if artifact.blob_id is None:
        where = f" at {artifact.uri}" if artifact.uri else ""
        raise NotFound(f"This artifact is stored outside the portal{where}; fetch it from there.")
    blob = artifact.blob
    data = {"run": run.pk, "path": artifact.path, "sha256": blob.sha256}
    try:
        chunks = vault.blob_chunks(blob)
        first = next(chunks, b"")  # a small tampered file fails here, before any byte is sent
    except vault.VaultError as exc:
        audit_event(
            actor=actor,
            event="artifact.integrity_error",
            obj=artifact,
            data={**data, "error": str(exc)},
            request=request,
        )
        raise IntegrityFailure(
            f"The stored artifact failed its integrity check and was not sent ({exc}). "
            "It was changed in storage: restore it from backup or upload it again."
        ) from None
    audit_event(actor=actor, event="artifact.download", obj=artifact, data=data, request=request)
    filename = re.sub(r"[^A-Za-z0-9._-]", "_", artifact.path.rsplit("/", 1)[-1]) or "artifact"
    return (itertools.chain([first], chunks) if first else iter(())), blob.plaintext_size, filename
