"""Permission-aware reads: experiments, runs tables, metric series, artifacts.

Object permissions live on the experiment (see models.py): a run is visible to whoever may view
its experiment and writable by whoever may change it, so every run read starts from
`restrict(user, "view", Experiment...)`. Children of an object already fetched through a `_for`
selector (`runs_of`, `metrics_of`, `artifacts_of`, `series_of`) take no user.

Bad filters raise Django's `ValidationError({field: [message]})`; invisible objects `NotFound`.
"""

from __future__ import annotations

import numpy as np
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apps.catalog.models import ModelVersion, RegisteredModel
from apps.core import sqltemplates
from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict
from apps.experiments.downsample import METHODS, downsample
from apps.experiments.filters import FilterError, apply_sort, parse_field, parse_filter
from apps.experiments.models import (
    Experiment,
    ExperimentKey,
    MetricPoint,
    Run,
    RunArtifact,
    RunMetricSummary,
    RunsTableColumns,
    RunTag,
)
from apps.experiments.validation import check_key

MAX_SERIES_POINTS = 1_000_000
# The tag a run (or its experiment) uses to name the metric people judge it by, e.g. a training
# template's monitored metric: `{"primary_metric": "val_acc"}` (comma-separated for several).
PRIMARY_METRIC_TAG = "primary_metric"
# Bookkeeping series: shown only when chosen, never among the default columns or charts.
HOUSEKEEPING_METRICS = ("epoch", "step", "lr", "learning_rate")


# --- experiments --------------------------------------------------------------------------------
def experiments_visible(user, filters: dict | None = None) -> QuerySet[Experiment]:
    """The experiments `user` may view, newest first, with `run_count`, `running_count` (runs
    training now: running and not stale) and `stale_count` annotated (one query per page,
    however many rows). `filters`: ``{"name": exact name}``."""
    filters = filters or {}
    experiments = restrict(user, "view", Experiment.objects.select_related("owner", "team"))
    if filters.get("name"):
        experiments = experiments.filter(name=filters["name"])
    running = Q(runs__status=Run.Status.RUNNING)
    return experiments.annotate(
        run_count=Count("runs", distinct=True),
        running_count=Count("runs", filter=running & Q(runs__stale=False), distinct=True),
        stale_count=Count("runs", filter=running & Q(runs__stale=True), distinct=True),
    ).order_by("-created_at", "-pk")


def experiment_for(user, pk: int, action: Action = "view") -> Experiment:
    """One experiment: `NotFound` when `user` may not view it, `Forbidden` when visible but
    `action` is not allowed. `run_count` is annotated (the API shows it)."""
    run_count = Run.objects.filter(experiment=OuterRef("pk")).order_by().values("experiment").annotate(n=Count("pk"))
    experiments = Experiment.objects.select_related("owner", "team").annotate(
        run_count=Coalesce(Subquery(run_count.values("n"), output_field=IntegerField()), 0)
    )
    experiment = _one(restrict(user, "view", experiments), pk)
    if experiment is None:
        raise NotFound("No experiment matches the given query.")
    if action != "view":
        require(user, action, experiment)
    return experiment


def keys_of(experiment: Experiment, limit: int = 300) -> tuple[list[str], list[str]]:
    """(metric keys, param keys) logged in the experiment, sorted; one query."""
    metrics, params = [], []
    rows = ExperimentKey.objects.filter(experiment=experiment).order_by("kind", "key").values_list("kind", "key")
    for kind, key in rows[: 2 * limit]:
        (metrics if kind == ExperimentKey.Kind.METRIC else params).append(key)
    return metrics[:limit], params[:limit]


# --- runs ---------------------------------------------------------------------------------------
def _one(queryset: QuerySet, pk) -> object | None:
    try:
        return queryset.filter(pk=int(pk)).first()
    except (ValueError, TypeError, OverflowError):  # a malformed key reads as missing
        return None


def run_for(user, pk: int, action: Action = "view") -> Run:
    """One run: `NotFound` when `user` may not view its experiment, `Forbidden` when visible but
    `action` is not allowed on the experiment (runs have no access list of their own)."""
    runs = Run.objects.select_related("experiment__owner", "experiment__team", "owner").filter(
        experiment__in=restrict(user, "view", Experiment.objects.all())
    )
    run = _one(runs, pk)
    if run is None:
        raise NotFound("No run matches the given query.")
    if action != "view":
        require(user, action, run.experiment)
    return run


RUN_TO_WRITE_FIELDS = ("id", "experiment_id", "name", "status", "stale")


def run_to_write(pk) -> Run:
    """The run, for a caller that hands it straight to a service which checks the actor's rights
    itself (run_log_batch and the other run services `require` change rights: NotFound for a
    caller who may not view it, Forbidden for a viewer). The logging hot path (a script logs every
    step): one narrow query compiled once (apps/core/sqltemplates.py); the other fields load on
    first use. `NotFound` when there is no such run. Never use it to show a run to anyone."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        pk = 0
    if not 0 < pk < 2**63:
        raise NotFound("No run matches the given query.")
    p = sqltemplates.Params()
    marked = p.int(pk)
    found = sqltemplates.rows(
        p.key("experiments.run_to_write"), p, lambda: Run.objects.filter(pk=marked).values_list(*RUN_TO_WRITE_FIELDS)
    )
    if not found:
        raise NotFound("No run matches the given query.")
    return Run.from_db("default", RUN_TO_WRITE_FIELDS, tuple(found[0]))


def run_experiment_for(user, pk: int, action: Action = "view") -> Experiment:
    """The experiment of run `pk`, which holds the run's access list (runs have none of their
    own): sharing a run shares its experiment. Raises as `run_for`."""
    return run_for(user, pk, action).experiment


def runs_visible(user, filters: dict | None = None) -> QuerySet:
    """The ids of the runs `user` may view that match `filters`, in table order.

    `filters` (validated query string): ``experiment`` (id), ``status``, ``stale`` (True: only
    runs whose client went silent, False: none of them), ``filter`` (the filter language of
    filters.py) and ``order_by``. Ids, not rows: the paginated query stays narrow
    (no wide run columns joined or sorted over 10,000 runs); load a page with `runs_in_order`.
    Raises `ValidationError` naming ``filter``, ``order_by`` or ``status``."""
    filters = filters or {}
    runs = Run.objects.filter(experiment__in=restrict(user, "view", Experiment.objects.all()))
    if filters.get("experiment"):
        runs = runs.filter(experiment_id=filters["experiment"])
    return _ordered_ids(runs, filters)


def runs_where(user, experiment_ids, where: Q, ordering: list) -> QuerySet:
    """The ids of the runs `user` may view in `experiment_ids` that match `where`, ordered by
    `ordering` (expressions over the run's own columns and its summary, param and tag rows, built
    by a caller such as the MLflow search parser). Ids, as `runs_visible`; load with `runs_in_order`."""
    runs = Run.objects.filter(experiment__in=restrict(user, "view", Experiment.objects.all()))
    return (
        runs.filter(experiment_id__in=list(experiment_ids))
        .filter(where)
        .order_by(*ordering)
        .values_list("pk", flat=True)
    )


def experiments_where(user, where: Q, ordering: list) -> QuerySet[Experiment]:
    """The experiments `user` may view that match `where`, in `ordering` (no counts annotated)."""
    return restrict(user, "view", Experiment.objects.all()).filter(where).order_by(*ordering)


def runs_of(experiment: Experiment, filters: dict | None = None) -> QuerySet:
    """The ids of `experiment`'s runs matching `filters`, in table order (as `runs_visible`)."""
    return _ordered_ids(Run.objects.filter(experiment=experiment), filters or {})


def _ordered_ids(runs: QuerySet[Run], filters: dict) -> QuerySet:
    status = filters.get("status") or ""
    if status:
        if status not in Run.Status.values:
            raise ValidationError({"status": [f"status is one of {', '.join(Run.Status.values)}; got {status!r}."]})
        runs = runs.filter(status=status)
    if filters.get("stale") is not None:
        runs = runs.filter(stale=bool(filters["stale"]))
    sort = filters.get("order_by") or ""
    try:
        if sort:
            parse_field(sort.lstrip("-+"))
    except FilterError as exc:
        raise ValidationError({"order_by": [str(exc)]}) from None
    try:
        runs = runs.filter(parse_filter(filters.get("filter") or ""))
    except FilterError as exc:
        raise ValidationError({"filter": [str(exc)]}) from None
    return apply_sort(runs, sort).values_list("pk", flat=True)


def runs_in_order(ids) -> list[Run]:
    """The rows of a page of ids from `runs_visible` / `runs_of`, in that order (one query)."""
    ids = list(ids)
    by_id = Run.objects.select_related("owner").defer("log_tail").in_bulk(ids)
    return [by_id[pk] for pk in ids if pk in by_id]


def summaries_of(run_ids, keys: list[str] | None = None) -> dict[int, dict[str, RunMetricSummary]]:
    """{run_id: {key: summary}} for runs already fetched through a selector, in one query."""
    run_ids = list(run_ids)
    rows = RunMetricSummary.objects.filter(run_id__in=run_ids)
    if keys is not None:
        rows = rows.filter(key__in=keys)
    out: dict[int, dict[str, RunMetricSummary]] = {rid: {} for rid in run_ids}
    for row in rows:
        out[row.run_id][row.key] = row
    return out


def metrics_of(run: Run) -> list[RunMetricSummary]:
    """The run's metric keys with latest, min, max and count, by key (one query)."""
    return list(RunMetricSummary.objects.filter(run=run).order_by("key", "pk"))


def run_model_versions_visible(user, run_ids) -> dict[int, ModelVersion]:
    """{run_id: the newest model version registered from that run} among the models `user` may
    view (the catalog records the producing run in `ModelVersion.run_id`), in one query."""
    keys = [str(pk) for pk in run_ids]
    if not keys:
        return {}
    versions = (
        ModelVersion.objects.filter(model__in=restrict(user, "view", RegisteredModel.objects.all()), run_id__in=keys)
        .select_related("model", "artifact")
        .order_by("model__name", "version", "pk")
    )
    return {int(v.run_id): v for v in versions}  # the newest wins


def training_output_of(run: Run) -> dict | None:
    """What the training job behind `run` keeps outside the run's own artifacts: its latest
    checkpoint (epoch, step, size, digest), or None for a run no training job wrote. One query."""
    row = (
        Run.objects.filter(pk=run.pk, training_job__isnull=False)
        .values(
            "training_job__pk",
            "training_job__checkpoint_id",
            "training_job__checkpoint_epoch",
            "training_job__checkpoint_step",
            "training_job__checkpoint__plaintext_size",
            "training_job__checkpoint__sha256",
        )  # fmt: skip
        .first()
    )
    if row is None:
        return None
    return {
        "job": row["training_job__pk"],
        "checkpoint": row["training_job__checkpoint_id"] is not None,
        "epoch": row["training_job__checkpoint_epoch"],
        "step": row["training_job__checkpoint_step"],
        "size": row["training_job__checkpoint__plaintext_size"],
        "sha256": row["training_job__checkpoint__sha256"] or "",
    }


def primary_metrics_of(experiment: Experiment) -> list[str]:
    """The metrics named primary by the experiment's `primary_metric` tag or its runs' (e.g. the
    training template's monitored metric), in first-seen order; one query."""
    names = [experiment.tags.get(PRIMARY_METRIC_TAG, "")]
    names += RunTag.objects.filter(run__experiment=experiment, key=PRIMARY_METRIC_TAG).values_list("value", flat=True)[
        :20
    ]
    out = [n.strip() for text in names for n in (text or "").split(",") if n.strip()]
    return list(dict.fromkeys(out))


def metrics_by_interest(metric_keys: list[str], primary: list[str] = ()) -> list[str]:
    """`metric_keys` in the order people look at them: primary first, then validation, test
    and other metrics, bookkeeping (epoch, lr, timings) last; system metrics left out."""

    def rank(key: str) -> tuple[int, str]:
        low = key.lower()
        if key in primary:
            return (0, f"{primary.index(key):04d}")
        if low.startswith(("val_", "val/", "valid", "eval")):
            return (1, key)
        if low.startswith(("test_", "test/")):
            return (2, key)
        if low in HOUSEKEEPING_METRICS or low.endswith(("_time_s", "_time", "_seconds")):
            return (4, key)
        return (3, key)

    return sorted((k for k in metric_keys if not k.startswith("system/")), key=rank)


def runs_table_columns_for(user, experiment: Experiment) -> RunsTableColumns | None:
    """The columns `user` last chose for `experiment`'s runs table (an experiment already
    fetched through `experiment_for`), or None."""
    return RunsTableColumns.objects.filter(user=user, experiment=experiment).first()


def artifacts_of(run: Run) -> QuerySet[RunArtifact]:
    """A run's artifacts by path, with their vault blobs."""
    return RunArtifact.objects.filter(run=run).select_related("blob").order_by("path", "pk")


def artifact_of(run: Run, path: str) -> RunArtifact:
    """The run's artifact at `path` (`NotFound` if there is none)."""
    artifact = artifacts_of(run).filter(path=path).first()
    if artifact is None:
        raise NotFound(f"Run {run.pk} has no artifact at {path!r}.")
    artifact.run = run
    return artifact


# --- metric series ------------------------------------------------------------------------------
def _read_series(run_id: int, key: str, after_step: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, values, timestamps) in step order; NULL values come back as NaN."""
    table = MetricPoint._meta.db_table
    if connection.vendor == "postgresql":
        return _read_series_pg(table, run_id, key, after_step)
    sql = f"SELECT step, value, timestamp FROM {table} WHERE run_id = %s AND key = %s"  # noqa: S608  table from the model, values are parameters
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
        "SELECT string_agg(int8send(step), ''::bytea), string_agg(float8send(COALESCE(value, 'NaN')), ''::bytea), "  # noqa: S608  table from the model, values are parameters
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


def series_of(
    run: Run, key: str, *, max_points: int | None = None, method: str = "minmax", after_step: int | None = None
) -> dict:
    """The series of `key` in step order, as columns; downsampled when longer than max_points.
    Raises `ValidationError` naming ``key`` or ``method``."""
    problem = check_key(key)
    if problem:
        raise ValidationError({"key": [problem]})
    if method not in METHODS:
        raise ValidationError({"method": [f"Use one of {', '.join(METHODS)}."]})
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


def series_of_runs(runs: list[Run], key: str, *, max_points: int = 1000) -> dict[int, dict]:
    """{run_id: {"steps", "values"}} of `key` for runs already fetched through a selector, read
    in one query (the compare page draws its first chart without a request per run); each
    series downsampled to `max_points` (min/max buckets), NaN as None."""
    if check_key(key):
        return {}
    rows = (
        MetricPoint.objects.filter(run_id__in=[r.pk for r in runs], key=key)
        .order_by("run_id", "step")
        .values_list("run_id", "step", "value")
    )
    by_run: dict[int, list] = {r.pk: [] for r in runs}
    for run_id, step, value in rows.iterator(chunk_size=10_000):
        by_run[run_id].append((step, np.nan if value is None else value))
    out = {}
    for run_id, points in by_run.items():
        data = np.array(points, dtype=np.float64).reshape(-1, 2)
        steps, values = data[:, 0], data[:, 1]
        if len(steps) > max_points:
            keep = downsample(steps, values, max_points, "minmax")
            steps, values = steps[keep], values[keep]
        out[run_id] = {
            "steps": steps.astype(np.int64).tolist(),
            "values": [None if np.isnan(v) else v for v in values.tolist()],
        }
    return out
