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

from apps.core import sharing
from apps.core.errors import NotFound
from apps.core.forms import apply_validation_error
from apps.core.permissions import can
from apps.experiments import selectors, services
from apps.experiments.forms import ExperimentForm, RunsTableForm
from apps.experiments.models import Experiment, Run

MAX_COMPARE = 20
DEFAULT_METRIC_COLUMNS = 4
DEFAULT_PARAM_COLUMNS = 4


STATUS_CLASSES = {"running": "primary", "finished": "success", "failed": "danger", "killed": "warning"}


def _metric_text(summary) -> str:
    if summary is None:
        return "—"
    if summary.last is None:
        return "NaN"
    return f"{summary.last:.4g}" if abs(summary.last) >= 1e4 or 0 < abs(summary.last) < 1e-3 else f"{summary.last:.4f}"


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


def experiment_detail(request, pk, *, share_form=None, status=200):
    experiment = selectors.experiment_for(request.user, pk)
    can_change = can(request.user, "change", experiment)
    metric_keys, param_keys = selectors.keys_of(experiment)
    form = RunsTableForm(request.GET or None, metric_keys=metric_keys, param_keys=param_keys)
    error = None
    values = form.cleaned_data if form.is_valid() else {}
    if request.GET and not form.is_valid():
        error = "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
    metric_cols = (
        values.get("metric") or [k for k in metric_keys if not k.startswith("system/")][:DEFAULT_METRIC_COLUMNS]
    )
    param_cols = values.get("param") or param_keys[:DEFAULT_PARAM_COLUMNS]
    sort = values.get("sort") or ""
    filters = {"filter": values.get("filter", ""), "order_by": sort, "status": values.get("status", "")}
    try:
        ids = selectors.runs_of(experiment, filters)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        ids = selectors.runs_of(experiment)
    page = Paginator(ids, values.get("page_size") or 50).get_page(request.GET.get("page"))
    page_runs = selectors.runs_in_order(page)
    summaries = selectors.summaries_of([r.pk for r in page_runs], metric_cols)
    run_url = reverse("experiments:run-detail", args=[0])[:-2]  # "/runs/"; rows add "<id>/"
    rows = [  # formatted here: a 200-row page renders in milliseconds, not template-tag time
        {
            "id": r.pk,
            "name": r.name,
            "url": f"{run_url}{r.pk}/",
            "status": r.status,
            "status_class": STATUS_CLASSES.get(r.status, "secondary"),
            "progress": round((r.progress or 0) * 100),
            "metrics": [(k, _metric_text(summaries[r.pk].get(k))) for k in metric_cols],
            "params": [_param_text(r.params.get(k)) for k in param_cols],
            "owner": r.owner.username,
            "created": r.created_at.strftime("%Y-%m-%d %H:%M"),
        }
        for r in page_runs
    ]
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
        "metric_keys": metric_keys,
        "param_keys": param_keys,
        "values": request.GET,
        "sort": sort,
        "error": error,
        "query": params.urlencode(),
        "sort_query": sort_params.urlencode(),
        "statuses": Run.Status.values,
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


def run_detail(request, pk):
    run = selectors.run_for(request.user, pk)
    summaries = selectors.metrics_of(run)
    context = {
        "run": run,
        "experiment": run.experiment,
        "summaries": [s for s in summaries if not s.key.startswith("system/")],
        "system": [s for s in summaries if s.key.startswith("system/")],
        "artifacts": list(selectors.artifacts_of(run)),
        "can_change": can(request.user, "change", run.experiment),
        "live": {"run": run.pk, "status": run.status, "progress": run.progress},
    }
    return render(request, "experiments/run_detail.html", context)


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
    metric_keys = sorted({k for d in data for k in d["metrics"] if not k.startswith("system/")})
    param_keys = sorted({k for d in data for k in d["params"]})
    context = {
        "experiment": experiment,
        "runs": runs,
        "compare": {"runs": data, "metric_keys": metric_keys, "param_keys": param_keys},
    }
    return render(request, "experiments/compare.html", context)


experiment_share, experiment_unshare = sharing.share_page_views(
    lookup=selectors.experiment_for,
    detail_view=experiment_detail,
    detail_url="experiments:experiment-detail",
    key="pk",
)
