"""Drift report pages: the list of reports the user may see, and one report (header, per-feature
table, reference-against-current histograms, data quality, drift score over time).

Thin: `reports_visible` / `report_for` read through the decision point (404 for strangers) and
`report_masked` hides a feature view's personal data; charts.py shapes what Plotly draws.
A queued or running report polls itself with htmx until it is done.
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render

from apps.monitoring import forms
from apps.monitoring.models import DriftReport
from apps.monitoring.selectors import drift_history, report_for, report_masked, reports_visible
from apps.monitoring.views import charts

PAGE_SIZE = 25


def report_list(request):
    form = forms.ReportFiltersForm(request.GET)
    page = Paginator(reports_visible(request.user, form.filters()), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "monitoring/report_list.html", {"page": page, "form": form, "query": query.urlencode()})


def report_detail(request, pk):
    report = report_for(request.user, pk)
    done = report.state == DriftReport.State.SUCCEEDED
    shown = report_masked(request.user, report) if done else {"features": {}, "quality": {}}
    history = drift_history(request.user, report.endpoint) if done and report.endpoint_id else []
    quality = shown["quality"] or {}
    rows = charts.feature_rows(shown["features"])
    context = {
        "report": report,
        "running": report.state in (DriftReport.State.QUEUED, DriftReport.State.RUNNING),
        "progress_percent": round((report.progress or 0) * 100),
        "features": rows,
        "drifted": sum(r["status"] == "drift" for r in rows),
        "compared": sum(r["status"] != "missing" for r in rows),
        "predictions": charts.feature_rows(report.predictions or {}),
        "charts": charts.comparison(shown["features"], report.predictions or {}) if done else None,
        "quality": quality,
        "schema": quality.get("schema") or {},
        "quality_rows": charts.quality_rows(quality),
        "wrong_types": charts.wrong_types(quality.get("schema") or {}),
        "history": charts.drift_series(history, report.route) if len(history) > 1 else None,
        "thresholds": sorted((report.thresholds or {}).items()),
    }
    return render(request, "monitoring/report_detail.html", context)
