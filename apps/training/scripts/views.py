"""Browser pages of training scripts: the list (with the register form), one script with its
versions and an upload form, and the launch form. Permissions come from the selectors and the
services; templates ask `can_add.trainingscript`."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core import sharing
from apps.core.forms import apply_validation_error
from apps.core.permissions import can, require
from apps.training import views as training_views  # one page size for the training pages
from apps.training.models import TrainingJob, TrainingScript
from apps.training.scripts import selectors, services
from apps.training.scripts.forms import ScriptLaunchForm, ScriptRegisterForm, ScriptUploadForm
from apps.training.scripts.launch import script_job_launch


def script_list(request):
    form = ScriptRegisterForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        require(request.user, "add", TrainingScript)
        if form.is_valid():
            try:
                script = services.script_register(actor=request.user, **form.cleaned_data)
            except ValidationError as exc:
                apply_validation_error(form, exc)
            else:
                messages.success(request, f"Script {script.name} registered (version 1).")
                return redirect("training:script-detail", name=script.name)
    page = Paginator(selectors.scripts_visible(request.user), training_views.PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return render(request, "training/script_list.html", {"page": page, "form": form})


def script_detail(request, name, *, upload_form=None, share_form=None, status=200):
    script = selectors.script_for(request.user, name)
    can_change = can(request.user, "change", script)
    versions = Paginator(selectors.versions_of(script), training_views.PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "script": script,
        "page": versions,
        "can_change": can_change,
        "can_launch": can(request.user, "launch", script) and can(request.user, "add", TrainingJob),
        "upload_form": upload_form or ScriptUploadForm(),
        "sharing": sharing.sharing_context(
            script,
            request.user,
            can_change=can_change,
            form=share_form,
            share_url=reverse("training:script-share", args=[script.name]),
            unshare_url=reverse("training:script-unshare", args=[script.name]),
        ),  # fmt: skip
    }
    return render(request, "training/script_detail.html", context, status=status)


@require_POST
def script_upload(request, name):
    script = selectors.script_for(request.user, name, "change")
    form = ScriptUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            version = services.script_version_add(
                script=script, actor=request.user, file=form.cleaned_data["file"],
                entry_point=form.cleaned_data.get("entry_point") or None,
            )  # fmt: skip
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Version {version.version} of {script.name} uploaded.")
            return redirect("training:script-detail", name=script.name)
    return script_detail(request, name, upload_form=form, status=400)


def script_launch(request, name):
    script = selectors.script_for(request.user, name, "launch")
    require(request.user, "add", TrainingJob)
    form = ScriptLaunchForm(request.POST or None, versions=list(selectors.versions_of(script)))
    if request.method == "POST" and form.is_valid():
        try:
            job = script_job_launch(actor=request.user, script=script.name, **form.launch_kwargs())
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Job {job.pk} is queued on {job.queue}.")
            return redirect("training:job-detail", pk=job.pk)
    return render(request, "training/script_launch.html", {"form": form, "script": script})


script_share, script_unshare = sharing.share_page_views(
    lookup=selectors.script_for, detail_view=script_detail, detail_url="training:script-detail", key="name"
)
