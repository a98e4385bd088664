"""Browser pages of canaries and A/B tests: the canary page (start form for editors, the ramp drawn
live from `GET /api/v1/endpoints/{name}/canary`, abort), and the A/B report page.

Thin: `endpoint_for` reads (404 strangers, 403 viewers on change), the canary services write and
check permission; a form shows a service's ValidationError, Conflict becomes the 409 page.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.catalog.models import ModelVersion
from apps.core.forms import BootstrapFormMixin, apply_validation_error
from apps.core.permissions import can
from apps.serving.api.canary_serializers import AbReportQuerySerializer, CanarySerializer
from apps.serving.models import Canary, Route
from apps.serving.selectors import endpoint_for
from apps.serving.services.canaries import baseline_of, serving_version_id
from apps.serving.services.canaries import canary_abort as abort_canary
from apps.serving.services.canaries import canary_start as start_canary
from apps.serving.services.canary_rules import DEFAULT_MIN_SAMPLES
from apps.serving.traffic_selectors import ab_report_of, canary_latest

VERSION_CHOICES = 50


class CanaryStartForm(BootstrapFormMixin, forms.Form):
    version = forms.TypedChoiceField(coerce=int, help_text="The version to ramp up (of the baseline route's model).")
    steps = forms.CharField(initial="5, 25, 50, 100", help_text="Traffic percentages, rising, ending at 100.")
    step_interval_s = forms.IntegerField(
        label="Step interval (seconds)", initial=300, min_value=10, max_value=86_400,
        help_text="How long each step runs before it is judged.",
    )  # fmt: skip
    error_rate_points = forms.FloatField(
        label="Error rate guard (points)", required=False, initial=2.0, min_value=0, max_value=100,
        help_text="Roll back when the canary's error rate is this many points above the baseline's.",
    )  # fmt: skip
    p95_latency_ms = forms.FloatField(
        label="p95 latency guard (ms)", required=False, initial=50, min_value=0,
        help_text="Roll back when its p95 latency is this much above the baseline's.",
    )  # fmt: skip
    outcome = forms.FloatField(
        label="Outcome guard", required=False, min_value=0,
        help_text="Optional: roll back when its mean outcome (feedback) falls this far below the baseline's.",
    )  # fmt: skip
    min_samples = forms.IntegerField(
        initial=DEFAULT_MIN_SAMPLES, min_value=1, help_text="Requests (and outcomes) each side needs before a verdict."
    )

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v.version, f"v{v.version}") for v in versions]

    def clean_steps(self) -> list[int]:
        try:
            return [int(part) for part in self.cleaned_data["steps"].replace(" ", "").split(",") if part]
        except ValueError:
            raise ValidationError("Give whole percentages separated by commas, such as 5, 25, 50, 100.") from None

    def plan(self) -> dict:
        data = self.cleaned_data
        guards = {
            "error_rate": data["error_rate_points"] / 100 if data["error_rate_points"] is not None else None,
            "p95_latency_ms": data["p95_latency_ms"],
            "outcome": data["outcome"],
            "min_samples": data["min_samples"],
        }
        return {
            "version": data["version"], "steps": data["steps"], "step_interval_s": data["step_interval_s"],
            "guards": {k: v for k, v in guards.items() if v is not None},
        }  # fmt: skip


def _versions(endpoint) -> list[ModelVersion]:
    """The baseline model's versions, newest first, without the one the baseline serves now."""
    baseline = baseline_of([r for r in endpoint.routes.all() if r.mode == Route.Mode.LIVE])
    if baseline is None:
        return []
    versions = ModelVersion.objects.filter(model=baseline.model).exclude(pk=serving_version_id(baseline))
    return list(versions.order_by("-version")[:VERSION_CHOICES])


def _page(request, endpoint, form=None, status: int = 200):
    canary = canary_latest(endpoint)
    can_change = can(request.user, "change", endpoint)
    running = canary is not None and canary.state == Canary.State.RUNNING
    if form is None and can_change and not running:
        form = CanaryStartForm(versions=_versions(endpoint))
    context = {
        "endpoint": endpoint, "canary": canary, "running": running, "can_change": can_change, "form": form,
        "canary_data": CanarySerializer(canary).data if canary else None,
        "baseline": baseline_of([r for r in endpoint.routes.all() if r.mode == Route.Mode.LIVE]),
    }  # fmt: skip
    return render(request, "serving/canary.html", context, status=status)


def canary_page(request, name):
    return _page(request, endpoint_for(request.user, name))


@require_POST
def canary_start(request, name):
    endpoint = endpoint_for(request.user, name, "change")
    form = CanaryStartForm(request.POST, versions=_versions(endpoint))
    if form.is_valid():
        try:
            start_canary(actor=request.user, endpoint=endpoint, **form.plan())
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, "Canary started; it is judged after each step interval.")
            return redirect("serving:canary", name=endpoint.name)
    return _page(request, endpoint, form=form, status=400)


@require_POST
def canary_abort(request, name):
    endpoint = endpoint_for(request.user, name, "change")
    abort_canary(actor=request.user, endpoint=endpoint)
    messages.success(request, "Canary aborted; its traffic went back to the baseline.")
    return redirect("serving:canary", name=endpoint.name)


def ab_report_page(request, name):
    endpoint = endpoint_for(request.user, name)
    query = AbReportQuerySerializer(data=request.GET)
    filters = query.validated_data if query.is_valid() else {"metric": "auto"}
    report = ab_report_of(
        endpoint, metric=filters["metric"], min_effect=filters.get("min_effect"), since=filters.get("since")
    )
    chart = {
        "routes": [e["route"] for e in report["routes"] if e["n"]],
        "values": [e.get("rate", e.get("mean")) for e in report["routes"] if e["n"]],
        "low": [e["ci_low"] for e in report["routes"] if e["n"]],
        "high": [e["ci_high"] for e in report["routes"] if e["n"]],
        "metric": report["metric"],
    }
    context = {"endpoint": endpoint, "report": report, "chart": chart, "errors": query.errors, "values": request.GET}
    return render(request, "serving/ab_report.html", context)
