"""Runs: their lifecycle (create, update, the guarded status moves, progress, the stale flag),
logging (metric points, params, tags, system metrics, the log tail), truncating metrics before a
resume, and the private helpers behind them: the summary upsert, bulk point inserts (COPY on
PostgreSQL), the throttled sign of life and the after-commit live status messages. Every change
needs change rights on the run's experiment.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q, QuerySet
from django.utils import timezone

from apps.core import residency, sqltemplates
from apps.core.audit import audit_event
from apps.core.errors import Conflict, NotFound
from apps.core.permissions import apply_scope, require, scope
from apps.core.queues import validate_region
from apps.experiments import live
from apps.experiments.models import Experiment, ExperimentKey, MetricPoint, Run, RunMetricSummary, RunParam, RunTag
from apps.experiments.validation import Point, as_number, clean_metrics, clean_params, clean_tags, now_ms

log = logging.getLogger(__name__)

LOG_TAIL_CHARS = 64 * 1024
TRANSITIONS = {
    Run.Status.QUEUED: {Run.Status.RUNNING, Run.Status.FAILED, Run.Status.KILLED},
    Run.Status.RUNNING: {Run.Status.FINISHED, Run.Status.FAILED, Run.Status.KILLED},
}
COPY_THRESHOLD = 50  # PostgreSQL: batches this big go through COPY
# A run's sign of life is written at most this often (a trainer logging 50 batches a second must
# not rewrite its run row 50 times a second); far below any sensible EXPERIMENTS_STALE_AFTER_S.
TOUCH_EVERY_S = 5


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
    region: str | None = None,
    started_at: datetime | None = None,
) -> Run:
    """Start a run in `experiment` (the actor needs change rights on it and the add_run role).
    `started_at`: when a running run started, if not now (a client's own clock, an import).

    `region` is the residency region of the run's data (a training job on pinned data); default the
    experiment's. A pinned run in an experiment pinned elsewhere is refused (`RegionMismatch`, audited)."""
    require(actor, "change", experiment)
    require(actor, "add", Run)
    region = _run_region(experiment, region, actor=actor)
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
            region=region,
            params=params,
            tags=tags,
            started_at=(started_at or now) if status == Run.Status.RUNNING else None,
            last_seen_at=now,
        )
        RunParam.objects.bulk_create(
            [RunParam(run=run, key=k, value=v, value_num=as_number(v)) for k, v in params.items()]
        )
        RunTag.objects.bulk_create([RunTag(run=run, key=k, value=v) for k, v in tags.items()])
        _remember_keys(experiment.pk, ExperimentKey.Kind.PARAM, params)
        _publish_status(run)
    return run


def run_delete(*, run: Run, actor) -> None:
    """Delete the run with its metric points, params, tags and artifacts (their vault blobs go
    after commit). Delete rights on its experiment; audited. A training job that made the run
    keeps its row (its run link becomes empty)."""
    require(actor, "delete", run.experiment)
    data = {"run": run.pk, "experiment": run.experiment_id, "name": run.name}
    with transaction.atomic():
        MetricPoint.objects.filter(run_id=run.pk).delete()  # no FK constraint: not cascaded by the database
        audit_event(actor=actor, event="run.delete", obj=run.experiment, data=data)
        run.delete()


def run_tag_delete(*, run: Run, actor, key: str) -> Run:
    """Remove tag `key` from the run (change rights on its experiment); `NotFound` when the run has
    no such tag."""
    require(actor, "change", run.experiment)
    with transaction.atomic():
        locked = Run.objects.select_for_update().only("id", "tags").get(pk=run.pk)
        if key not in locked.tags:
            raise NotFound(f"Run {run.pk} has no tag {key!r}.")
        RunTag.objects.filter(run_id=run.pk, key=key).delete()
        run.tags = {k: v for k, v in locked.tags.items() if k != key}
        locked.tags = run.tags
        locked.save(update_fields=["tags", "updated_at"])  # audited, as a tag change is
    return run


def _run_region(experiment: Experiment, region: str | None, *, actor) -> str:
    try:
        region = validate_region(region) or residency.UNPINNED
    except ValueError as exc:
        raise ValidationError({"region": [str(exc)]}) from None
    if not residency.is_pinned(region):
        return experiment.region
    if residency.is_pinned(experiment.region) and region != experiment.region:
        residency.refuse(
            actor=actor,
            obj=experiment,
            region=region,
            action="create a run",
            mismatch=True,
            why=f"The run's data is pinned to region {region!r}, but experiment {experiment.name!r} is pinned to "
            f"region {experiment.region!r}. Log it in an experiment of region {region!r} (or an unpinned one).",
        )
    return region


@transaction.atomic
def run_update(*, run: Run, actor, name=None, notes=None, status=None, progress=None, ended_at=None) -> Run:
    """Rename, annotate and/or move the run's status and progress, in one transaction (change
    rights on its experiment); the status rules (and `ended_at`) are `run_set_status`'s."""
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
        _set_status(run, status, progress, ended_at)
    return run


def run_set_status(
    *, run: Run, actor, status: str | None = None, progress: float | None = None, ended_at: datetime | None = None
) -> Run:
    """Move a run along queued -> running -> finished/failed/killed and/or report progress (0..1)
    (change rights on its experiment; `Conflict` for a move the current status does not allow).
    `ended_at`: when a run that becomes terminal ended, if not now (a client's own clock, an import).

    A status change is audited; progress alone is not (it may be reported every step).
    """
    require(actor, "change", run.experiment)
    return _set_status(run, status, progress, ended_at)


def _set_status(run: Run, status: str | None, progress: float | None, ended_at: datetime | None = None) -> Run:
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
                run.ended_at = ended_at or now
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
    _require_change(actor, run)
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


def _require_change(actor, run: Run) -> None:
    """`require(actor, "change", run.experiment)` in one query for the logging hot path (a trainer
    or an MLflow script logs every step): the same decision (`scope` + `apply_scope`, what
    `restrict` asks), its SQL compiled once per shape (apps/core/sqltemplates.py), instead of the
    two object checks `require` makes; only a refusal asks `require` itself, for its
    NotFound-or-Forbidden answer."""
    p = sqltemplates.Params()
    decided = p.scope(scope(actor, "change", Experiment))
    experiment_id = p.int(run.experiment_id)
    allowed = sqltemplates.count(
        p.key("experiments.change_one"),
        p,
        lambda: apply_scope(decided, Experiment.objects.filter(pk=experiment_id)).values_list("pk"),
    )
    if not allowed:
        require(actor, "change", run.experiment)


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
                f"INSERT INTO {table} (run_id, key, step, value, timestamp) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608  table from the model, values are parameters
                rows,
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
