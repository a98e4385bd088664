"""Permission-aware reads: experiments, runs tables, metric series."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.http import Http404

from apps.core.permissions import OWNER_ACTIONS as ACTIONS
from apps.core.permissions import restrict
from apps.experiments.downsample import METHODS, downsample
from apps.experiments.filters import FilterError, apply_sort, parse_field, parse_filter
from apps.experiments.models import (
    Experiment,
    ExperimentGroupObjectPermission,
    ExperimentKey,
    ExperimentUserObjectPermission,
    MetricPoint,
    Run,
    RunArtifact,
    RunMetricSummary,
)

MAX_SERIES_POINTS = 1_000_000


def visible_experiments(user) -> QuerySet[Experiment]:
    return restrict(user, "view", Experiment.objects.all())


def experiment_list(user) -> QuerySet[Experiment]:
    return (
        visible_experiments(user)
        .select_related("owner", "team")
        .annotate(
            run_count=Count("runs", distinct=True),
            running_count=Count("runs", filter=Q(runs__status=Run.Status.RUNNING), distinct=True),
        )
        .order_by("-created_at")
    )


def visible_runs(user) -> QuerySet[Run]:
    return Run.objects.filter(experiment__in=visible_experiments(user).values("pk"))


def experiment_actions(user, experiment: Experiment) -> set[str]:
    """What `user` may do with `experiment` ("view", "change", "delete"), from the user's model
    permissions (direct or through roles) and object permissions (direct or through teams), in
    one query: the hot paths (log-batch, series) check on every call."""
    if user is None or not user.is_authenticated or not user.is_active:
        return set()
    if user.is_superuser:
        return set(ACTIONS)
    codenames = [f"{a}_experiment" for a in ACTIONS]
    models = Permission.objects.filter(
        content_type=ContentType.objects.get_for_model(Experiment), codename__in=codenames
    ).order_by()
    rows = (
        models.filter(user=user)
        .values_list("codename", flat=True)
        .union(
            models.filter(group__user=user).values_list("codename", flat=True),
            ExperimentUserObjectPermission.objects.filter(user=user, content_object=experiment)
            .order_by()
            .values_list("permission__codename", flat=True),
            ExperimentGroupObjectPermission.objects.filter(group__user=user, content_object=experiment)
            .order_by()
            .values_list("permission__codename", flat=True),
        )
    )
    return {c.split("_", 1)[0] for c in rows}


def _check(user, experiment: Experiment, action: str, what: str) -> None:
    actions = experiment.user_actions = experiment_actions(user, experiment)  # reused by pages
    if "view" not in actions:
        raise Http404(f"No {what} matches the given query.")
    if action not in actions:
        raise PermissionDenied(f"You may view this {what} but not {action} it; ask the experiment's owner.")


def get_experiment(user, pk, action: str = "view") -> Experiment:
    """The experiment if `user` may view it (404 otherwise); other actions raise 403 when missing."""
    try:
        experiment = Experiment.objects.select_related("owner", "team").get(pk=int(pk))
    except (Experiment.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No experiment matches the given query.") from None
    _check(user, experiment, action, "experiment")
    return experiment


def get_run(user, pk, action: str = "view") -> Run:
    """The run if `user` may view its experiment (404 otherwise); `change` needs change rights there."""
    try:
        run = Run.objects.select_related("experiment", "owner").get(pk=int(pk))
    except (Run.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404("No run matches the given query.") from None
    _check(user, run.experiment, action, "run")
    return run


def run_artifacts(run: Run) -> QuerySet[RunArtifact]:
    """A run's artifacts by path, with their vault blobs (the caller checked the run with get_run)."""
    return RunArtifact.objects.filter(run=run).select_related("blob").order_by("path")


def run_artifact(run: Run, path: str) -> RunArtifact:
    """The run's artifact at `path` (404 if there is none)."""
    artifact = run_artifacts(run).filter(path=path).first()
    if artifact is None:
        raise Http404(f"Run {run.pk} has no artifact at {path!r}.")
    artifact.run = run
    return artifact


@dataclass
class RunQuery:
    filter: str = ""
    sort: str = ""
    status: str = ""


def runs_queryset(base: QuerySet[Run], query: RunQuery) -> QuerySet[Run]:
    """Filter and order runs; raises FilterError with a message for the user."""
    qs = base.filter(parse_filter(query.filter))
    if query.status:
        if query.status not in Run.Status.values:
            raise FilterError(f"status is one of {', '.join(Run.Status.values)}; got {query.status!r}.")
        qs = qs.filter(status=query.status)
    return apply_sort(qs, query.sort).select_related("owner")


def run_ids(base: QuerySet[Run], query: RunQuery) -> QuerySet:
    """The ids of the matching runs in table order: a narrow query (no wide run columns are
    joined or sorted), paginated first; `runs_in_order` then loads only the page's rows."""
    qs = base.filter(parse_filter(query.filter))
    if query.status:
        if query.status not in Run.Status.values:
            raise FilterError(f"status is one of {', '.join(Run.Status.values)}; got {query.status!r}.")
        qs = qs.filter(status=query.status)
    return apply_sort(qs, query.sort).values_list("pk", flat=True)


def runs_in_order(ids: list[int]) -> list[Run]:
    by_id = Run.objects.select_related("owner").defer("log_tail").in_bulk(list(ids))
    return [by_id[pk] for pk in ids if pk in by_id]


def summaries_for(run_ids: list[int], keys: list[str] | None = None) -> dict[int, dict[str, RunMetricSummary]]:
    """{run_id: {key: summary}} in one query."""
    rows = RunMetricSummary.objects.filter(run_id__in=run_ids)
    if keys is not None:
        rows = rows.filter(key__in=keys)
    out: dict[int, dict[str, RunMetricSummary]] = {rid: {} for rid in run_ids}
    for row in rows:
        out[row.run_id][row.key] = row
    return out


def experiment_keys(experiment: Experiment, limit: int = 300) -> tuple[list[str], list[str]]:
    """(metric keys, param keys) logged in the experiment, sorted; one query."""
    metrics, params = [], []
    rows = ExperimentKey.objects.filter(experiment=experiment).order_by("kind", "key").values_list("kind", "key")
    for kind, key in rows[: 2 * limit]:
        (metrics if kind == ExperimentKey.Kind.METRIC else params).append(key)
    return metrics[:limit], params[:limit]


def validate_sort(sort: str) -> str:
    if sort:
        parse_field(sort.lstrip("-+"))
    return sort


def _read_series(run_id: int, key: str, after_step: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, values, timestamps) in step order; NULL values come back as NaN."""
    table = MetricPoint._meta.db_table
    if connection.vendor == "postgresql":
        return _read_series_pg(table, run_id, key, after_step)
    sql = f"SELECT step, value, timestamp FROM {table} WHERE run_id = %s AND key = %s"
    args: list = [run_id, key]
    if after_step is not None:
        sql += " AND step > %s"
        args.append(after_step)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} ORDER BY step LIMIT {MAX_SERIES_POINTS}", args)
        rows = cursor.fetchall()
    if not rows:
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64)
    data = np.array(rows, dtype=np.float64)  # None -> NaN
    return data[:, 0].astype(np.int64), data[:, 1], data[:, 2].astype(np.int64)


def _read_series_pg(table: str, run_id: int, key: str, after_step: int | None):
    # PostgreSQL packs each column into one bytea (int8send/float8send are big-endian binary), so
    # 100,000 points cross the wire as three buffers that numpy reads without a Python object per
    # value. The inner ORDER BY walks the covering (run_id, key, step) index: no sort.
    after = "AND step > %s" if after_step is not None else ""
    sql = (
        "SELECT string_agg(int8send(step), ''::bytea), string_agg(float8send(COALESCE(value, 'NaN')), ''::bytea), "
        "string_agg(int8send(timestamp), ''::bytea) FROM ("
        f"SELECT step, value, timestamp FROM {table} WHERE run_id = %s AND key = %s {after} "
        f"ORDER BY step LIMIT {MAX_SERIES_POINTS}) s"
    )
    args = [run_id, key] + ([after_step] if after_step is not None else [])
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        steps, values, stamps = cursor.fetchone()
    if steps is None:
        empty = np.empty(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64)
    steps = np.frombuffer(steps, dtype=">i8").astype(np.int64)
    values = np.frombuffer(values, dtype=">f8").astype(np.float64)
    stamps = np.frombuffer(stamps, dtype=">i8").astype(np.int64)
    if len(steps) > 1 and (np.diff(steps) < 0).any():  # aggregation order is not guaranteed by SQL
        order = np.argsort(steps, kind="stable")
        steps, values, stamps = steps[order], values[order], stamps[order]
    return steps, values, stamps


def metric_series(
    run: Run, key: str, *, max_points: int | None = None, method: str = "minmax", after_step: int | None = None
) -> dict:
    """The series of `key` in step order, as columns; downsampled when longer than max_points."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    steps, values, timestamps = _read_series(run.pk, key, after_step)
    total = len(steps)
    downsampled = max_points is not None and total > max_points
    if downsampled:
        keep = downsample(steps.astype(np.float64), values, max_points, method)
        steps, values, timestamps = steps[keep], values[keep], timestamps[keep]
    nan = np.isnan(values)
    value_list = values.tolist()
    if nan.any():
        for i in np.flatnonzero(nan).tolist():
            value_list[i] = None
    return {
        "run": run.pk,
        "key": key,
        "total": total,
        "returned": len(steps),
        "downsampled": downsampled,
        "method": method if downsampled else None,
        "steps": steps.tolist(),
        "values": value_list,
        "timestamps": timestamps.tolist(),
    }
