"""Browser pages: jobs, templates + launch form, job page (live), queues, costs, sweeps."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.errors import Conflict
from apps.core.permissions import can
from apps.training import selectors, services, sweeps
from apps.training.engine import templates as engine_templates
from apps.training.forms import LaunchForm, SweepForm
from apps.training.models import Sweep, TrainingJob
from apps.training.runner import gpu_hint


def _template_or_404(name: str):
    if name not in engine_templates.TEMPLATES:
        raise Http404("No such training template.")
    return engine_templates.get_template(name)


def job_list(request):
    state = request.GET.get("state", "")
    if state not in TrainingJob.State.values:
        state = ""
    jobs = selectors.job_list(request.user, state=state).select_related("experiment")
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "training/job_list.html",
        {"page": page, "state": state, "states": TrainingJob.State.choices,
         "can_add": request.user.has_perm("training.add_trainingjob")},
    )  # fmt: skip


def template_list(request):
    return render(
        request,
        "training/template_list.html",
        {"templates": services.template_list(), "can_add": request.user.has_perm("training.add_trainingjob")},
    )


def job_launch(request, name):
    template = _template_or_404(name)
    if not request.user.has_perm("training.add_trainingjob"):
        raise PermissionDenied("Your roles do not allow launching training jobs; ask a platform admin.")
    initial = {"training_set": request.GET.get("training_set")}  # links may preselect a set
    form = LaunchForm(request.POST or None, template=template, user=request.user, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.job_launch(actor=request.user, **form.launch_kwargs())
        except ValidationError as exc:
            form.add_service_errors(exc.message_dict)
        else:
            if job.warning:
                messages.warning(request, job.warning)
            messages.success(request, f"Job {job.pk} is queued on {job.queue}.")
            return redirect("training:job-detail", pk=job.pk)
    return render(request, "training/job_launch.html", {"form": form, "template": template.to_dict()})


def job_detail(request, pk):
    job = selectors.get_job(request.user, pk)
    can_cancel = not job.is_terminal and can(request.user, "change", job)
    live = services.job_message(job)
    return render(
        request,
        "training/job_detail.html",
        {"job": job, "can_cancel": can_cancel, "live": live, "gpu_hint": gpu_hint(job),
         "rate": settings.QUEUE_COST_PER_HOUR.get(job.queue.split(".")[0])},
    )  # fmt: skip


@require_POST
def job_cancel(request, pk):
    job = selectors.get_job(request.user, pk)
    try:
        job = services.job_cancel(job=job, actor=request.user)
    except Conflict as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(
            request, "Cancelled." if job.state == "cancelled" else "Cancel requested; it stops before its next step."
        )
    return redirect("training:job-detail", pk=job.pk)


def queue_page(request):
    return render(request, "training/queues.html", selectors.queue_overview(request.user))


def cost_page(request):
    context = selectors.cost_totals(request.user)
    context["hints"] = [(job, gpu_hint(job)) for job in context.pop("gpu_jobs") if gpu_hint(job)]
    context["rates"] = settings.QUEUE_COST_PER_HOUR
    return render(request, "training/costs.html", context)


def sweep_list(request):
    page = Paginator(selectors.sweep_list(request.user), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "training/sweep_list.html",
        {"page": page, "templates": list(engine_templates.TEMPLATES),
         "can_add": request.user.has_perm("training.add_sweep")},
    )  # fmt: skip


def sweep_create(request, template):
    spec = _template_or_404(template)
    if not request.user.has_perm("training.add_sweep"):
        raise PermissionDenied("Your roles do not allow starting sweeps; ask a platform admin.")
    form = SweepForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            sweep = sweeps.sweep_create(actor=request.user, template=spec.name, **form.cleaned_data)
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                key = "params" if key.startswith("params.") else key
                form.add_error(key if key in form.fields else None, errors)
        else:
            messages.success(request, f"Sweep {sweep.name} started.")
            return redirect("training:sweep-detail", pk=sweep.pk)
    return render(request, "training/sweep_create.html", {"form": form, "template": spec.to_dict()})


def sweep_detail(request, pk):
    sweep = selectors.get_sweep(request.user, pk)
    jobs = list(selectors.job_list(request.user, sweep=sweep.pk).order_by("trial_number"))
    names = sorted(sweep.space)
    trials = [
        {"trial": j.trial_number, "job": j.pk, "state": j.state, "params": [j.params.get(n) for n in names],
         "value": j.metrics.get(sweep.metric), "best": j.pk == sweep.best_job_id}
        for j in jobs
    ]  # fmt: skip
    plot = {"names": names, "metric": sweep.metric, "mode": sweep.mode,
            "trials": [t for t in trials if isinstance(t["value"], int | float)]}  # fmt: skip
    return render(
        request, "training/sweep_detail.html", {"sweep": sweep, "trials": trials, "names": names, "plot": plot,
                                                "method": Sweep.Method(sweep.method).label,
                                                "can_cancel": sweep.state not in Sweep.TERMINAL
                                                and can(request.user, "change", sweep),
                                                "best_value": sweep.best_job.metrics.get(sweep.metric) if sweep.best_job else None}
    )  # fmt: skip


@require_POST
def sweep_cancel(request, pk):
    sweep = selectors.get_sweep(request.user, pk)
    try:
        sweeps.sweep_cancel(sweep=sweep, actor=request.user)
    except Conflict as exc:
        messages.error(request, str(exc.detail))
    else:
        messages.success(request, "Sweep cancelled: no new trials; queued trials are cancelled and running ones stop "
                                  "before their next step.")  # fmt: skip
    return redirect("training:sweep-detail", pk=sweep.pk)
