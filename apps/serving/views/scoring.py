"""Batch-scoring pages: the job list with progress bars, the new-job form (upload or training
set), the job page (polls the API every 2 s), cancel, and the predictions download.

Permissions come from the scoring selectors (404 for strangers, 403 for viewers) and the services;
a finished job's cancel (409) and a download before success (409) get the portal's error page.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.catalog.selectors import models_visible
from apps.core import vault
from apps.core.forms import BootstrapFormMixin, apply_validation_error
from apps.core.pages import page_requires
from apps.core.permissions import can
from apps.features.selectors import training_sets_visible
from apps.serving.models import ScoringJob
from apps.serving.scoring.downloads import FORMATS, predictions_download
from apps.serving.scoring.selectors import scoring_job_for, scoring_jobs_visible
from apps.serving.scoring.services import scoring_job_cancel, scoring_job_create
from apps.serving.scoring.states import scoring_message

PAGE_SIZE = 50
CHOICES_SHOWN = 500


def _names(text: str) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


class ScoringForm(BootstrapFormMixin, forms.Form):
    model = forms.ChoiceField(label="Model")
    version = forms.IntegerField(min_value=1, label="Version")
    file = forms.FileField(required=False, label="File (Parquet or CSV)")
    training_set = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="or a training set")
    resource_class = forms.ChoiceField(choices=ScoringJob.ResourceClass.choices, initial="cpu", label="Resource class")
    region = forms.CharField(required=False, max_length=41, help_text="empty: the default region")
    exclude = forms.CharField(required=False, help_text="id or label columns that are not inputs, comma-separated")
    keep = forms.CharField(required=False, help_text="columns copied into the predictions as keys, comma-separated")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        names = models_visible(user, {}).values_list("name", flat=True)[:CHOICES_SHOWN]
        self.fields["model"].choices = [("", "Choose a model")] + [(n, n) for n in names]
        sets = training_sets_visible(user).values_list("pk", "name")[:CHOICES_SHOWN]
        self.fields["training_set"].choices = [("", "none: score the file")] + [(pk, f"{n} (#{pk})") for pk, n in sets]

    def create_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "model": data["model"], "version": data["version"], "file": data.get("file"),
            "training_set": data.get("training_set"), "resource_class": data["resource_class"],
            "region": data.get("region") or None, "exclude": _names(data.get("exclude")), "keep": _names(data.get("keep")),
        }  # fmt: skip


def scoring_list(request):
    state = request.GET.get("state", "")
    if state not in ScoringJob.State.values:
        state = ""
    page = Paginator(scoring_jobs_visible(request.user, {"state": state}), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "state": state,
        "states": ScoringJob.State.choices,
        "can_add": can(request.user, "add", ScoringJob),
    }
    return render(request, "serving/scoring_list.html", context)


@page_requires("add", ScoringJob)
def scoring_create(request):
    form = ScoringForm(request.POST or None, request.FILES or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            job = scoring_job_create(actor=request.user, request=request, **form.create_kwargs())
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Scoring job {job.pk} is queued on {job.queue}.")
            return redirect("serving:scoring-detail", pk=job.pk)
    return render(request, "serving/scoring_create.html", {"form": form})


def scoring_detail(request, pk):
    job = scoring_job_for(request.user, pk)
    context = {
        "job": job,
        "live": scoring_message(job),
        "can_cancel": not job.is_terminal and can(request.user, "change", job),
        "api_url": reverse("api-v1:serving:scoring-detail", args=[job.pk]),
        "formats": list(FORMATS),
        "lineage": sorted((job.lineage or {}).items()),
    }
    return render(request, "serving/scoring_detail.html", context)


@require_POST
def scoring_cancel(request, pk):
    job = scoring_job_cancel(job=scoring_job_for(request.user, pk), actor=request.user, request=request)
    messages.success(
        request, "Cancelled." if job.state == "cancelled" else "Cancel requested; it stops before its next chunk."
    )
    return redirect("serving:scoring-detail", pk=job.pk)


def scoring_download(request, pk):
    fmt = request.GET.get("format", "parquet")
    job = scoring_job_for(request.user, pk)
    out = predictions_download(job=job, actor=request.user, fmt=fmt if fmt in FORMATS else "parquet", request=request)
    response = vault.streaming_response(
        out.chunks, request=request, size=out.size, filename=out.filename, content_type=out.content_type
    )
    if out.sha256:
        response["X-Content-SHA256"] = out.sha256
    return response
