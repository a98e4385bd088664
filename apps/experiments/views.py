"""Browser pages: experiments list, experiment dashboard (runs table), run page, compare page."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core import sharing
from apps.core.forms import apply_validation_error
from apps.experiments import selectors, services
from apps.experiments.filters import FilterError
from apps.experiments.forms import ExperimentForm, RunsTableForm
from apps.experiments.models import Run

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
    can_add = request.user.has_perm("experiments.add_experiment")
    form = ExperimentForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not can_add:
            messages.error(request, "Your roles do not allow creating experiments; ask a platform admin.")
        elif form.is_valid():
            try:
                experiment = services.experiment_create(
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                    team=form.cleaned_data["team"],
                    actor=request.user,
                )
            except ValidationError as exc:
                apply_validation_error(form, exc)
            else:
                messages.success(
                    request, f"Experiment {experiment.name} created. Log runs to it from a script or a training job."
                )
                return redirect("experiments:experiment-detail", pk=experiment.pk)
    page = Paginator(selectors.experiment_list(request.user), 50).get_page(request.GET.get("page"))
    return render(request, "experiments/experiment_list.html", {"page": page, "form": form, "can_add": can_add})


def experiment_detail(request, pk, *, share_form=None, status=200):
    experiment = selectors.get_experiment(request.user, pk)
    runs = Run.objects.filter(experiment=experiment)
    metric_keys, param_keys = selectors.experiment_keys(experiment)
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
    query = selectors.RunQuery(filter=values.get("filter", ""), sort=sort, status=values.get("status", ""))
    try:
        selectors.validate_sort(query.sort)
        ids = selectors.run_ids(runs, query)
    except FilterError as exc:
        error = str(exc)
        ids = selectors.run_ids(runs, selectors.RunQuery())
    page = Paginator(ids, values.get("page_size") or 50).get_page(request.GET.get("page"))
    page_runs = selectors.runs_in_order(list(page))
    summaries = selectors.summaries_for([r.pk for r in page_runs], metric_cols)
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
        "can_change": "change" in experiment.user_actions,
        "sharing": sharing.sharing_context(
            experiment,
            request.user,
            can_change="change" in experiment.user_actions,
            form=share_form,
            share_url=reverse("experiments:experiment-share", args=[experiment.pk]),
            unshare_url=reverse("experiments:experiment-unshare", args=[experiment.pk]),
        ),
    }
    return render(request, "experiments/experiment_detail.html", context, status=status)


@require_POST
def experiment_share(request, pk):
    experiment = selectors.get_experiment(request.user, pk, "change")  # 404 strangers, 403 viewers
    form = sharing.SharingForm(request.POST)
    if sharing.share_from_form(request, form, obj=experiment):
        return redirect("experiments:experiment-detail", pk=experiment.pk)
    return experiment_detail(request, experiment.pk, share_form=form, status=400)  # inline errors; nothing changed


@require_POST
def experiment_unshare(request, pk):
    experiment = selectors.get_experiment(request.user, pk, "change")
    sharing.unshare_from_post(request, obj=experiment)
    return redirect("experiments:experiment-detail", pk=experiment.pk)


def run_detail(request, pk):
    run = selectors.get_run(request.user, pk)
    summaries = sorted(selectors.summaries_for([run.pk])[run.pk].values(), key=lambda s: s.key)
    context = {
        "run": run,
        "experiment": run.experiment,
        "summaries": [s for s in summaries if not s.key.startswith("system/")],
        "system": [s for s in summaries if s.key.startswith("system/")],
        "artifacts": list(run.artifacts.all()),
        "can_change": "change" in run.experiment.user_actions,
        "live": {"run": run.pk, "status": run.status, "progress": run.progress},
    }
    return render(request, "experiments/run_detail.html", context)


def run_compare(request, pk):
    experiment = selectors.get_experiment(request.user, pk)
    try:
        ids = [int(v) for v in request.GET.getlist("runs") if v.strip()]
    except ValueError:
        raise Http404("Run ids are numbers.") from None
    ids = list(dict.fromkeys(ids))[:MAX_COMPARE]
    runs = list(Run.objects.filter(experiment=experiment, pk__in=ids).order_by("pk"))
    if len(runs) < 2:
        messages.info(request, "Tick at least two runs in the table (up to 20), then press Compare.")
        return redirect("experiments:experiment-detail", pk=experiment.pk)
    summaries = selectors.summaries_for([r.pk for r in runs])
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
