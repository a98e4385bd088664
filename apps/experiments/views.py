"""Browser pages: experiments list, experiment dashboard (runs table), run page, compare page.

Reads go through `selectors` (`_for` raises NotFound/Forbidden, which Django shows as the 404 and
403 pages), writes through `services`; a form's `ValidationError` goes back onto the form.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.core import sharing
from apps.core.errors import NotFound
from apps.core.format import num, when
from apps.core.forms import apply_validation_error
from apps.core.permissions import can
from apps.experiments import selectors, services
from apps.experiments.forms import ExperimentForm, RunsTableColumnsForm, RunsTableForm
from apps.experiments.models import Experiment, Run

MAX_COMPARE = 20
DEFAULT_METRIC_COLUMNS = 4
DEFAULT_PARAM_COLUMNS = 4
COMPARE_SERIES_POINTS = 1000
# The runs table's status choices: "running" means training now; "stale" the running runs whose
# client went silent (flagged by the experiments.mark_stale_runs task).
STATUS_FILTERS = {
    "queued": {"status": Run.Status.QUEUED},
    "running": {"status": Run.Status.RUNNING, "stale": False},
    "stale": {"status": Run.Status.RUNNING, "stale": True},
    "finished": {"status": Run.Status.FINISHED},
    "failed": {"status": Run.Status.FAILED},
    "killed": {"status": Run.Status.KILLED},
}
STATUS_CLASSES = {"running": "primary", "finished": "success", "failed": "danger", "killed": "warning"}
RUN_SHARING_NOTE = (
    "Runs are shared with their experiment: whoever may view the experiment sees all its runs, "
    "and its editors may log to them. Changes here apply to the whole experiment."
)


def _metric_text(summary) -> str:
    if summary is None:
        return "—"
    return num(summary.last) if summary.last is not None else "NaN"


def _param_text(value) -> str:
    if value in (None, ""):
        return "—"
    return value if len(value) <= 30 else value[:29] + "…"


def experiment_list(request):
    form = ExperimentForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not can(request.user, "add", Experiment):
            messages.error(request, "Your roles do not allow creating experiments; ask a platform admin.")
        elif form.is_valid():
            team = form.cleaned_data["team"]
            try:
                experiment = services.experiment_create(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    team=team.slug if team is not None else None,
                    region=form.cleaned_data["region"] or "default",
                )
            except ValidationError as exc:
                apply_validation_error(form, exc)
            else:
                messages.success(
                    request, f"Experiment {experiment.name} created. Log runs to it from a script or a training job."
                )
                return redirect("experiments:experiment-detail", pk=experiment.pk)
    page = Paginator(selectors.experiments_visible(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "experiments/experiment_list.html", {"page": page, "form": form})


def _table_columns(request, experiment, values: dict, metric_keys: list[str], param_keys: list[str]):
    """The runs table's columns: those in the URL, else the user's saved choice (keys still
    logged), else the metrics people look at first (primary, then validation) and the first params."""
    saved = selectors.runs_table_columns_for(request.user, experiment)
    metric_cols = values.get("metric") or [k for k in (saved.metrics if saved else []) if k in metric_keys]
    param_cols = values.get("param") or [k for k in (saved.params if saved else []) if k in param_keys]
    if not metric_cols:
        primary = selectors.primary_metrics_of(experiment)
        metric_cols = selectors.metrics_by_interest(metric_keys, primary)[:DEFAULT_METRIC_COLUMNS]
    return metric_cols, param_cols or param_keys[:DEFAULT_PARAM_COLUMNS]


def _run_rows(page_runs, metric_cols: list[str], param_cols: list[str]) -> list[dict]:
    """The runs table's rows, formatted here: a 200-row page renders in milliseconds, not template-tag time."""
    summaries = selectors.summaries_of([r.pk for r in page_runs], metric_cols)
    run_url = reverse("experiments:run-detail", args=[0])[:-2]  # "/runs/"; rows add "<id>/"
    return [
        {
            "id": r.pk,
            "name": r.name,
            "url": f"{run_url}{r.pk}/",
            "status": r.status,
            "stale": r.stale and r.status == Run.Status.RUNNING,
            "status_class": STATUS_CLASSES.get(r.status, "secondary"),
            "progress": round((r.progress or 0) * 100),
            "metrics": [(k, _metric_text(summaries[r.pk].get(k))) for k in metric_cols],
            "params": [_param_text(r.params.get(k)) for k in param_cols],
            "owner": r.owner.username,
            "created": when(r.created_at),
        }
        for r in page_runs
    ]


def experiment_detail(request, pk, *, share_form=None, status=200):
    experiment = selectors.experiment_for(request.user, pk)
    can_change = can(request.user, "change", experiment)
    metric_keys, param_keys = selectors.keys_of(experiment)
    form = RunsTableForm(request.GET or None, metric_keys=metric_keys, param_keys=param_keys)
    error = None
    values = form.cleaned_data if form.is_valid() else {}
    if request.GET and not form.is_valid():
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    metric_cols, param_cols = _table_columns(request, experiment, values, metric_keys, param_keys)
    sort = values.get("sort") or ""
    filters = {"filter": values.get("filter", ""), "order_by": sort, **STATUS_FILTERS.get(values.get("status"), {})}
    try:
        ids = selectors.runs_of(experiment, filters)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        ids = selectors.runs_of(experiment)
    page = Paginator(ids, values.get("page_size") or 50).get_page(request.GET.get("page"))
    rows = _run_rows(selectors.runs_in_order(page), metric_cols, param_cols)
    params = request.GET.copy()
    params.pop("page", None)
    sort_params = request.GET.copy()
    for key in ("page", "sort"):
        sort_params.pop(key, None)
    context = {
        "experiment": experiment,
        "page": page,
        "rows": rows,
        "metric_cols": metric_cols,
        "param_cols": param_cols,
        "metric_keys": selectors.metrics_by_interest(metric_keys) + [k for k in metric_keys if k.startswith("system/")],
        "param_keys": param_keys,
        "explicit_columns": bool(values.get("metric") or values.get("param")),
        "values": request.GET,
        "sort": sort,
        "error": error,
        "query": params.urlencode(),
        "sort_query": sort_params.urlencode(),
        "statuses": list(STATUS_FILTERS),
        "can_change": can_change,
        "sharing": sharing.sharing_context(
            experiment,
            request.user,
            can_change=can_change,
            form=share_form,
            share_url=reverse("experiments:experiment-share", args=[experiment.pk]),
            unshare_url=reverse("experiments:experiment-unshare", args=[experiment.pk]),
        ),
    }
    return render(request, "experiments/experiment_detail.html", context, status=status)


@require_POST
def runs_table_columns(request, pk):
    """Save the user's column choice for this experiment's runs table (``reset`` forgets it), then
    go back to the table with its filter, status, sort and page size kept."""
    experiment = selectors.experiment_for(request.user, pk)
    metric_keys, param_keys = selectors.keys_of(experiment)
    form = RunsTableColumnsForm(request.POST, metric_keys=metric_keys, param_keys=param_keys)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
    else:
        data = form.cleaned_data
        reset = data["reset"]
        services.runs_table_columns_save(
            actor=request.user,
            experiment=experiment,
            metrics=[] if reset else data["metric"],
            params=[] if reset else data["param"],
        )
        messages.success(request, "Columns reset to the defaults." if reset else "Columns saved for this experiment.")
    keep = {k: request.POST[k] for k in ("filter", "status", "sort", "page_size") if request.POST.get(k)}
    url = reverse("experiments:experiment-detail", args=[experiment.pk])
    return redirect(f"{url}?{urlencode(keep)}" if keep else url)


def _run_artifacts(run: Run, model_version) -> tuple[list, list[dict]]:
    """The run's own artifacts, and what training produced for it that lives elsewhere: the
    job's latest checkpoint and the registered model version's ONNX file (unless the run
    recorded those itself)."""
    artifacts = list(selectors.artifacts_of(run))
    paths = {a.path for a in artifacts}
    produced = []
    training = selectors.training_output_of(run)
    if training and training["checkpoint"]:
        produced.append(
            {
                "path": f"checkpoint (epoch {training['epoch']}, step {num(training['step'])})",
                "size": training["size"],
                "digest": f"sha256:{training['sha256']}" if training["sha256"] else "",
                "note": f"kept by training job #{training['job']} to resume from",
                "url": reverse("training:job-detail", args=[training["job"]]),
            }
        )
    if model_version is not None and "model.onnx" not in paths:
        name, number = model_version.model.name, model_version.version
        produced.append(
            {
                "path": "model.onnx",
                "size": model_version.artifact.plaintext_size,
                "digest": f"sha256:{model_version.artifact.sha256}",
                "note": f"registered as {name} v{number}",
                "url": reverse("catalog:version-download", args=[name, number]),
                "download": True,
            }
        )
    return artifacts, produced


def run_detail(request, pk, *, share_form=None, status=200):
    run = selectors.run_for(request.user, pk)
    experiment = run.experiment
    can_change = can(request.user, "change", experiment)
    summaries = selectors.metrics_of(run)
    model_version = selectors.run_model_versions_visible(request.user, [run.pk]).get(run.pk)
    artifacts, produced = _run_artifacts(run, model_version)
    run_sharing = sharing.sharing_context(
        experiment,
        request.user,
        can_change=can_change,
        form=share_form,
        share_url=reverse("experiments:run-share", args=[run.pk]),
        unshare_url=reverse("experiments:run-unshare", args=[run.pk]),
    )
    context = {
        "run": run,
        "experiment": experiment,
        "summaries": [s for s in summaries if not s.key.startswith("system/")],
        "system": [s for s in summaries if s.key.startswith("system/")],
        "artifacts": artifacts,
        "produced": produced,
        "model_version": model_version,
        "stale": run.stale and run.status == Run.Status.RUNNING,
        "can_change": can_change,
        "sharing": run_sharing,
        "sharing_note": RUN_SHARING_NOTE,
        "live": {"run": run.pk, "status": run.status, "progress": run.progress, "stale": run.stale},
    }
    return render(request, "experiments/run_detail.html", context, status=status)


def _differs(values: list) -> bool:
    return len({"" if v is None else str(v) for v in values}) > 1


def _compare_table(runs: list[Run], summaries: dict, metric_keys: list[str], param_keys: list[str]) -> dict:
    """Params and latest metrics side by side, one row per key; rows whose values differ
    between runs are flagged (the page highlights them)."""
    params = []
    for key in param_keys:
        values = [r.params.get(key) for r in runs]
        params.append({"key": key, "cells": [_param_text(v) for v in values], "differs": _differs(values)})
    metrics = []
    for key in metric_keys:
        cells = [_metric_text(summaries[r.pk].get(key)) for r in runs]
        metrics.append({"key": key, "cells": cells, "differs": _differs(cells)})
    return {"params": params, "metrics": metrics}


def run_compare(request, pk):
    experiment = selectors.experiment_for(request.user, pk)
    raw = [v.strip() for v in request.GET.getlist("runs") if v.strip()]
    if not all(v.isdigit() for v in raw):
        raise NotFound("Run ids are numbers.")
    ids = list(dict.fromkeys(int(v) for v in raw))[:MAX_COMPARE]
    runs = selectors.runs_in_order(selectors.runs_of(experiment).filter(pk__in=ids).order_by("pk"))
    if len(runs) < 2:
        messages.info(request, "Tick at least two runs in the table (up to 20), then press Compare.")
        return redirect("experiments:experiment-detail", pk=experiment.pk)
    summaries = selectors.summaries_of([r.pk for r in runs])
    logged = {k for s in summaries.values() for k in s}
    metric_keys = selectors.metrics_by_interest(sorted(logged), selectors.primary_metrics_of(experiment))
    param_keys = sorted({k for r in runs for k in r.params})
    # Params that differ first, the most varied leading (a constant is no axis; lr over 4 values
    # says more than batch_size over 2).
    distinct = {k: len({str(r.params.get(k)) for r in runs}) for k in param_keys}
    varying = sorted((k for k in param_keys if distinct[k] > 1), key=lambda k: (-distinct[k], k))
    table = _compare_table(runs, summaries, metric_keys, param_keys)
    default_metric = metric_keys[0] if metric_keys else ""
    series = selectors.series_of_runs(runs, default_metric, max_points=COMPARE_SERIES_POINTS) if default_metric else {}
    data = [
        {
            "id": r.pk,
            "name": r.name,
            "status": r.status,
            "params": r.params,
            "metrics": {k: s.last for k, s in summaries[r.pk].items()},
        }
        for r in runs
    ]
    context = {
        "experiment": experiment,
        "runs": runs,
        "table": table,
        "compare": {
            "runs": data,
            "metric_keys": metric_keys,
            "param_keys": varying + [k for k in param_keys if k not in varying],
            "varying_params": varying,
            "default_metric": default_metric,
            "series": {"key": default_metric, "runs": {str(k): v for k, v in series.items()}},
        },
    }
    return render(request, "experiments/compare.html", context)


experiment_share, experiment_unshare = sharing.share_page_views(
    lookup=selectors.experiment_for,
    detail_view=experiment_detail,
    detail_url="experiments:experiment-detail",
    key="pk",
)
# A run's Sharing card manages its experiment's sharing (runs have no access list of their own).
run_share, run_unshare = sharing.share_page_views(
    lookup=selectors.run_experiment_for,
    detail_view=run_detail,
    detail_url="experiments:run-detail",
    key="pk",
)
