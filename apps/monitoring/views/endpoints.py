"""An endpoint's monitoring page: traffic, latency and errors per route, the latest drift and
quality verdict per route, open alerts, model quality against training, a "check drift now"
form and the drift settings.

Thin: `endpoint_for` reads (404 strangers, 403 viewers on the settings), `overview_of` and
`model_quality` shape the numbers, `report_request` and `monitor_update` write and check
permission; their ValidationErrors come back on the forms.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.forms import apply_validation_error
from apps.monitoring import forms
from apps.monitoring.page_selectors import may_act_on
from apps.monitoring.selectors import model_quality, overview_of
from apps.monitoring.services.reports import monitor_update, report_request
from apps.monitoring.views import charts
from apps.serving.models import Route
from apps.serving.selectors import endpoint_for


def _live_routes(endpoint) -> list[str]:
    return [r.name for r in endpoint.routes.all() if r.mode == Route.Mode.LIVE]


def _page(request, endpoint, *, check_form=None, settings_form=None, status: int = 200):
    overview = overview_of(request.user, endpoint)
    quality = model_quality(endpoint)
    can_change = may_act_on(request.user, endpoint)
    if settings_form is None and can_change:
        settings_form = forms.MonitorSettingsForm(settings_now=overview["settings"])
    context = {
        "endpoint": endpoint,
        "overview": overview,
        "traffic": charts.traffic_series(overview["series"]),
        "quality": quality,
        "quality_chart": charts.quality_series(quality),
        "check_form": check_form or forms.DriftCheckForm(routes=_live_routes(endpoint)),
        "settings_form": settings_form,
        "can_change": can_change,
    }
    return render(request, "monitoring/endpoint_monitoring.html", context, status=status)


def endpoint_monitoring(request, name):
    return _page(request, endpoint_for(request.user, name))


@require_POST
def endpoint_monitoring_check(request, name):
    endpoint = endpoint_for(request.user, name)
    form = forms.DriftCheckForm(request.POST, routes=_live_routes(endpoint))
    if form.is_valid():
        data = form.cleaned_data
        try:
            report = report_request(
                actor=request.user, endpoint=endpoint, route=data["route"], start=data["start"], end=data["end"]
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Drift check {report.pk} is queued; this page shows it when it is done.")
            return redirect("monitoring:report-detail", pk=report.pk)
    return _page(request, endpoint, check_form=form, status=400)


@require_POST
def endpoint_monitoring_settings(request, name):
    endpoint = endpoint_for(request.user, name, "change")
    form = forms.MonitorSettingsForm(request.POST)
    if form.is_valid():
        try:
            monitor_update(actor=request.user, endpoint=endpoint, **form.changes())
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, "Saved. The next scheduled check uses these settings.")
            return redirect("monitoring:endpoint-monitoring", name=endpoint.name)
    return _page(request, endpoint, settings_form=form, status=400)
