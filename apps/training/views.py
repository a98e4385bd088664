"""Browser pages: jobs, templates + launch form, job page (live), queues, costs, sweeps, and the
Sharing cards of the job and sweep pages.

Permissions come from the selectors (`_for` raises NotFound/Forbidden) and `require`; templates
ask `can_add.trainingjob` / `can_add.sweep` from the context processor.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.core import queues, sharing
from apps.core.forms import apply_validation_error
from apps.core.permissions import can, require
from apps.training import selectors, services
from apps.training.forms import LaunchForm, SweepForm
from apps.training.models import Sweep, TrainingJob

PAGE_SIZE = 50


def job_list(request):
    state = request.GET.get("state", "")
    if state not in TrainingJob.State.values:
        state = ""
    jobs = selectors.jobs_visible(request.user, {"state": state})
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request, "training/job_list.html", {"page": page, "state": state, "states": TrainingJob.State.choices}
    )


def template_list(request):
    return render(request, "training/template_list.html", {"templates": selectors.templates_visible(request.user)})


def job_launch(request, name):
    template = selectors.template_for(request.user, name)
    require(request.user, "add", TrainingJob)  # after the template: an unknown one is a 404 for anyone
    initial = {"training_set": request.GET.get("training_set")}  # links may preselect a set
    experiments = selectors.experiments_for_launch(request.user)
    form = LaunchForm(
        request.POST or None, template=template, user=request.user, initial=initial, experiments=experiments
    )
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_launch(actor=request.user, **form.launch_kwargs())
        except ValidationError as exc:
            apply_validation_error(form, form.field_errors(exc))
        else:  # a routing warning is shown once, by the job page
            messages.success(request, f"Job {job.pk} is queued on {job.queue}.")
            return redirect("training:job-detail", pk=job.pk)
    return render(request, "training/job_launch.html", {"form": form, "template": template.to_dict()})


def readable(value) -> str:
    """One value as a person reads it: 0.003, 1,000, true, a, b (never a Python repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value)
    return str(value)


def key_value_rows(values: dict) -> list[tuple[str, str]]:
    """A job's params (or data spec) as (name, value) rows for the page, in name order."""
    return [(name, readable(value)) for name, value in sorted((values or {}).items())]


def job_detail(request, pk, *, share_form=None, status=200):
    job = selectors.job_for(request.user, pk)
    can_change = can(request.user, "change", job)
    queued = job.state == TrainingJob.State.QUEUED
    context = {
        "job": job,
        "params": key_value_rows(job.params),
        "data": key_value_rows(job.data),
        "can_cancel": not job.is_terminal and can_change,
        "waited_s": int((timezone.now() - job.queued_at).total_seconds()) if queued else None,
        "can_move_to_cpu": queued and can_change and queues.split_queue(job.queue)[0] == "gpu",
        "live": services.job_message(job),
        "gpu_hint": services.gpu_hint(job),
        "rate": settings.QUEUE_COST_PER_HOUR.get(job.queue.split(".")[0]),
        "sharing": sharing.sharing_context(
            job,
            request.user,
            can_change=can_change,
            form=share_form,
            share_url=reverse("training:job-share", args=[job.pk]),
            unshare_url=reverse("training:job-unshare", args=[job.pk]),
        ),
    }
    return render(request, "training/job_detail.html", context, status=status)


@require_POST
def job_cancel(request, pk):
    job = selectors.job_for(request.user, pk)
    job = services.job_cancel(job=job, actor=request.user)  # a finished job: the 409 page says so
    messages.success(
        request, "Cancelled." if job.state == "cancelled" else "Cancel requested; it stops before its next step."
    )
    return redirect("training:job-detail", pk=job.pk)


@require_POST
def job_move_to_cpu(request, pk):
    job = selectors.job_for(request.user, pk)
    job = services.job_move_to_cpu(job=job, actor=request.user)  # no longer queued: the 409 page says so
    messages.success(request, f"Job {job.pk} now waits on the CPU queue {job.queue}.")
    return redirect("training:job-detail", pk=job.pk)


job_share, job_unshare = sharing.share_page_views(
    lookup=selectors.job_for, detail_view=job_detail, detail_url="training:job-detail", key="pk"
)


def queue_page(request):
    return render(request, "training/queues.html", selectors.queue_overview(request.user))


def cost_page(request):
    context = selectors.cost_totals(request.user)
    hints = ((job, services.gpu_hint(job)) for job in context.pop("gpu_jobs"))
    context["hints"] = [(job, hint) for job, hint in hints if hint]
    context["rates"] = settings.QUEUE_COST_PER_HOUR
    return render(request, "training/costs.html", context)


def sweep_list(request):
    page = Paginator(selectors.sweeps_visible(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    templates = [t["name"] for t in selectors.templates_visible(request.user)]
    rows = [(s, s.best_job.metrics.get(s.metric) if s.best_job else None) for s in page]
    return render(request, "training/sweep_list.html", {"page": page, "rows": rows, "templates": templates})


def sweep_create(request, template):
    spec = selectors.template_for(request.user, template)
    require(request.user, "add", Sweep)  # after the template: an unknown one is a 404 for anyone
    form = SweepForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            sweep = services.sweep_create(actor=request.user, template=spec.name, **form.sweep_kwargs())
        except ValidationError as exc:
            apply_validation_error(form, form.field_errors(exc))
        else:
            messages.success(request, f"Sweep {sweep.name} started.")
            return redirect("training:sweep-detail", pk=sweep.pk)
    return render(request, "training/sweep_create.html", {"form": form, "template": spec.to_dict()})


def sweep_detail(request, pk, *, share_form=None, status=200):
    sweep = selectors.sweep_for(request.user, pk)
    can_change = can(request.user, "change", sweep)
    names = sorted(sweep.space)
    trials = [
        {"trial": j.trial_number, "job": j.pk, "state": j.state, "params": [j.params.get(n) for n in names],
         "value": j.metrics.get(sweep.metric), "best": j.pk == sweep.best_job_id}
        for j in selectors.jobs_of(sweep)
    ]  # fmt: skip
    plot = {"names": names, "metric": sweep.metric, "mode": sweep.mode,
            "trials": [t for t in trials if isinstance(t["value"], int | float)]}  # fmt: skip
    context = {
        "sweep": sweep,
        "trials": trials,
        "names": names,
        "plot": plot,
        "method": Sweep.Method(sweep.method).label,
        "can_cancel": sweep.state not in Sweep.TERMINAL and can_change,
        "best_value": sweep.best_job.metrics.get(sweep.metric) if sweep.best_job else None,
        "sharing": sharing.sharing_context(
            sweep,
            request.user,
            can_change=can_change,
            form=share_form,
            share_url=reverse("training:sweep-share", args=[sweep.pk]),
            unshare_url=reverse("training:sweep-unshare", args=[sweep.pk]),
        ),
    }
    return render(request, "training/sweep_detail.html", context, status=status)


@require_POST
def sweep_cancel(request, pk):
    sweep = selectors.sweep_for(request.user, pk)
    services.sweep_cancel(sweep=sweep, actor=request.user)  # a finished sweep: the 409 page says so
    messages.success(request, "Sweep cancelled: no new trials; queued trials are cancelled and running ones stop "
                              "before their next step.")  # fmt: skip
    return redirect("training:sweep-detail", pk=sweep.pk)


sweep_share, sweep_unshare = sharing.share_page_views(
    lookup=selectors.sweep_for, detail_view=sweep_detail, detail_url="training:sweep-detail", key="pk"
)
