"""Drift and data-quality reports: requested (202) by people or by the schedule, run by a task.

An endpoint report compares a window of one route's logged live traffic (the version that served
most of it) with that version's reference profile; a feature-view report compares two ingest
windows of the view. A report that finds drift or quality violations raises an alert (one per
endpoint route or view, counted while unresolved).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from apps.core.dispatch import enqueue
from apps.core.permissions import require
from apps.monitoring import sources
from apps.monitoring.models import Alert, DriftReport, EndpointMonitor
from apps.monitoring.services.alerts import alert_raise
from apps.monitoring.services.profiles import profile_ready_for
from apps.monitoring.stats import DEFAULT_THRESHOLDS, drift_compare, profile_build, quality_check
from apps.serving.models import PredictionLog, Route

log = logging.getLogger(__name__)
MAX_WINDOW = dt.timedelta(days=90)
THRESHOLD_KEYS = frozenset(DEFAULT_THRESHOLDS)


def _window(start, end, field: str = "start") -> None:
    if start is None or end is None:
        raise ValidationError({field: ["Give both start and end."]})
    if end <= start:
        raise ValidationError({"end": ["end must be after start."]})
    if end - start > MAX_WINDOW:
        raise ValidationError({"end": [f"A window may span at most {MAX_WINDOW.days} days."]})


def thresholds_clean(value, field: str = "thresholds") -> dict:
    """`{"psi": 0.2, ...}`: known keys, numbers between 0 and 10 (`min_rows`: a count)."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError({field: ["An object of threshold: value."]})
    unknown = sorted(set(value) - THRESHOLD_KEYS)
    if unknown:
        raise ValidationError(
            {field: [f"Unknown threshold {unknown[0]!r}; choose from {', '.join(sorted(THRESHOLD_KEYS))}."]}
        )
    clean = {}
    for key, number in value.items():
        top = 1_000_000_000 if key == "min_rows" else 10
        if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= top:
            raise ValidationError({field: [f"{key} must be a number between 0 and {top:,}."]})
        clean[key] = int(number) if key == "min_rows" else float(number)
    return clean


def overrides_clean(value) -> dict:
    """`{"feature": {"psi": 0.3}}`."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict) or len(value) > 1000:
        raise ValidationError({"overrides": ["An object of feature: {threshold: value}."]})
    return {str(k)[:200]: thresholds_clean(v, "overrides") for k, v in value.items()}


def report_request(
    *, actor, endpoint=None, route: str = "", feature_view=None, start=None, end=None,
    reference_start=None, reference_end=None, thresholds=None, overrides=None, trigger: str = "manual",
) -> DriftReport:  # fmt: skip
    """Queue one report. Endpoint: `route` defaults to the live route with the largest weight;
    thresholds and overrides default to the endpoint's monitoring settings. Anyone who may view
    the endpoint or feature view may check it."""
    require(actor, "view", endpoint if endpoint is not None else feature_view)
    return _report_create(
        requested_by=actor, endpoint=endpoint, route=route, feature_view=feature_view, start=start, end=end,
        reference_start=reference_start, reference_end=reference_end, thresholds=thresholds, overrides=overrides,
        trigger=trigger,
    )  # fmt: skip


def _report_create(
    *, requested_by, endpoint, route, feature_view, start, end, reference_start, reference_end, thresholds,
    overrides, trigger,
) -> DriftReport:  # fmt: skip
    _window(start, end)
    fields = {"start": start, "end": end, "trigger": trigger, "requested_by": requested_by}
    if endpoint is not None:
        routes = list(Route.objects.filter(endpoint=endpoint, mode=Route.Mode.LIVE).order_by("-weight", "position"))
        if route and route not in {r.name for r in routes}:
            raise ValidationError({"route": [f"{endpoint.name} has no live route {route!r}."]})
        if not routes:
            raise ValidationError({"endpoint": [f"{endpoint.name} has no live route to check."]})
        monitor = EndpointMonitor.objects.filter(endpoint=endpoint).first()
        fields |= {
            "subject": DriftReport.Subject.ENDPOINT, "endpoint": endpoint, "route": route or routes[0].name,
            "thresholds": thresholds_clean(thresholds) or (monitor.thresholds if monitor else {}),
            "overrides": overrides_clean(overrides) or (monitor.overrides if monitor else {}),
        }  # fmt: skip
    else:
        _window(reference_start, reference_end, "reference")
        fields |= {
            "subject": DriftReport.Subject.FEATURE_VIEW, "feature_view": feature_view,
            "reference_start": reference_start, "reference_end": reference_end,
            "thresholds": thresholds_clean(thresholds), "overrides": overrides_clean(overrides),
        }  # fmt: skip
    with transaction.atomic():
        report = DriftReport.objects.create(**fields)
        enqueue("monitoring.run_report", args=[report.pk], queue="default")
    return report


def report_run(report_id: int) -> DriftReport | None:
    """The task's body: compute, store, raise alerts. A failure is kept with its reason."""
    claimed = DriftReport.objects.filter(pk=report_id, state=DriftReport.State.QUEUED).update(
        state=DriftReport.State.RUNNING, started_at=timezone.now(), progress=0.05
    )
    report = DriftReport.objects.select_related("endpoint", "feature_view", "version").filter(pk=report_id).first()
    if report is None or not claimed:
        return report  # gone, or another delivery of the task runs it
    try:
        if report.subject == DriftReport.Subject.ENDPOINT:
            reference, current, profile = _endpoint_inputs(report)
        else:
            reference, current, profile = _view_inputs(report)
        DriftReport.objects.filter(pk=report.pk).update(progress=0.6)
        drift = drift_compare(profile, current.columns, predictions=current.predictions or None,
                              thresholds=report.thresholds or None, overrides=report.overrides or None)  # fmt: skip
        quality = quality_check(profile, current.columns)
    except ValidationError as exc:
        return _fail(report, "; ".join(m for ms in exc.message_dict.values() for m in ms))
    except Exception as exc:  # noqa: BLE001  (kept on the report with its reason)
        log.exception("drift report %s failed", report.pk)
        return _fail(report, f"{type(exc).__name__}: {exc}")
    report.state, report.progress, report.finished_at = DriftReport.State.SUCCEEDED, 1.0, timezone.now()
    report.status, report.quality_status = drift["status"], quality["status"]
    report.features, report.quality = drift["features"], quality
    prediction = next(iter((drift.get("predictions") or {}).values()), None)
    report.predictions = prediction or {}
    report.summary = {
        "drifted": [name for name, r in drift["features"].items() if r["status"] == "drift"],
        "compared": drift["compared"], "share": drift["drift_share"], "threshold": drift["threshold"],
        "reference_source": reference, "current_truncated": current.truncated,
    }  # fmt: skip
    report.rows_current = current.rows
    report.rows_reference = int(profile.get("rows") or 0)
    with transaction.atomic():
        report.save()
        _raise_alerts(report)
    return report


def _endpoint_inputs(report: DriftReport):
    counts = (
        PredictionLog.objects.filter(endpoint=report.endpoint, route=report.route, mode="live", status=200,
                                     created_at__gte=report.start, created_at__lt=report.end)
        .values("version").annotate(n=Count("id")).order_by("-n")
    )  # fmt: skip
    top = counts.first()
    if top is None or top["version"] is None:
        rate = report.endpoint.log_sample_rate
        raise ValidationError(
            {"window": [f"No logged live predictions of route {report.route} between {report.start:%Y-%m-%d %H:%M} "
                        f"and {report.end:%Y-%m-%d %H:%M} UTC (the endpoint logs {rate:.0%} of its predictions)."]}
        )  # fmt: skip
    from apps.catalog.models import ModelVersion

    version = ModelVersion.objects.select_related("model", "artifact").get(pk=top["version"])
    report.version = version
    DriftReport.objects.filter(pk=report.pk).update(version=version)
    profile = profile_ready_for(version)
    DriftReport.objects.filter(pk=report.pk).update(progress=0.3)
    current = sources.window_sample(endpoint=report.endpoint, route=report.route, version=version,
                                    names=list(profile.columns), start=report.start, end=report.end)  # fmt: skip
    if current.rows < settings.MONITORING_MIN_ROWS:
        raise ValidationError(
            {"window": [f"Only {current.rows} logged rows in the window; a check needs at least "
                        f"{settings.MONITORING_MIN_ROWS} (widen the window or raise the endpoint's log sample rate)."]}
        )  # fmt: skip
    return profile.source, current, profile.data


def _view_inputs(report: DriftReport):
    view = report.feature_view
    reference = sources.view_sample(view, start=report.reference_start, end=report.reference_end)
    current = sources.view_sample(view, start=report.start, end=report.end)
    for label, sample in (("reference", reference), ("current", current)):
        if sample.rows < settings.MONITORING_MIN_ROWS:
            raise ValidationError(
                {label: [f"The {label} window holds {sample.rows} rows of {view.name}; a check needs at least "
                         f"{settings.MONITORING_MIN_ROWS}."]}
            )  # fmt: skip
    profile = profile_build(reference.columns)
    return (
        f"{view.name} {report.reference_start:%Y-%m-%d %H:%M} to {report.reference_end:%Y-%m-%d %H:%M}",
        current,
        profile,
    )


def _fail(report: DriftReport, message: str) -> DriftReport:
    report.state, report.error, report.finished_at = DriftReport.State.FAILED, message[:2000], timezone.now()
    report.save(update_fields=["state", "error", "finished_at"])
    return report


def _raise_alerts(report: DriftReport) -> None:
    subject = report.subject_name
    where = {"endpoint": report.endpoint, "model": None, "feature_view": report.feature_view}
    key = f"endpoint:{report.endpoint_id}:{report.route}" if report.endpoint_id else f"view:{report.feature_view_id}"
    url = f"/monitoring/reports/{report.pk}/"
    if report.status == DriftReport.Status.DRIFT:
        drifted = report.summary.get("drifted") or []
        predictions = (report.predictions or {}).get("status") == "drift"
        alert_raise(
            kind=Alert.Kind.DRIFT, dedup_key=f"drift:{key}",
            severity=Alert.Severity.CRITICAL if predictions else Alert.Severity.WARNING,
            title=f"Drift on {subject}: {len(drifted)} feature(s)" + (" and the predictions" if predictions else ""),
            description="Drifted: " + (", ".join(map(str, drifted[:20])) or "predictions only")
            + f". Report {report.pk}, {report.rows_current:,} rows.",
            data={"report": report.pk}, object_url=url, **where,
        )  # fmt: skip
    if report.quality_status == "violation":
        checks = _violations(report.quality)
        alert_raise(
            kind=Alert.Kind.DATA_QUALITY, dedup_key=f"quality:{key}", severity=Alert.Severity.WARNING,
            title=f"Data quality on {subject}: {', '.join(checks[:5]) or 'violations'}",
            description=f"Report {report.pk}: see its data-quality section.",
            data={"report": report.pk}, object_url=url, **where,
        )  # fmt: skip


def _violations(quality: dict) -> list[str]:
    """Names of what broke: "schema" and the features with a violated check."""
    broken = ["schema"] if (quality.get("schema") or {}).get("status") == "violation" else []
    return broken + [name for name, r in (quality.get("features") or {}).items() if r.get("status") == "violation"]


def monitor_update(*, actor, endpoint, **changes) -> EndpointMonitor:
    """The endpoint's drift schedule, window and thresholds (`change` on the endpoint)."""
    require(actor, "change", endpoint)
    clean = {}
    for field in ("schedule_minutes", "window_minutes"):
        if field in changes:
            value = changes[field]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 60 * 24 * 31:
                raise ValidationError({field: ["Minutes between 0 and 44,640 (0: on demand only)."]})
            clean[field] = value
    if clean.get("window_minutes") == 0:
        raise ValidationError({"window_minutes": ["A window of at least one minute."]})
    if "thresholds" in changes:
        clean["thresholds"] = thresholds_clean(changes["thresholds"])
    if "overrides" in changes:
        clean["overrides"] = overrides_clean(changes["overrides"])
    with transaction.atomic():
        monitor, _ = EndpointMonitor.objects.select_for_update().get_or_create(endpoint=endpoint)
        for field, value in clean.items():
            setattr(monitor, field, value)
        monitor.updated_by = actor
        if "schedule_minutes" in clean:
            monitor.next_check_at = (
                timezone.now() + dt.timedelta(minutes=monitor.schedule_minutes) if monitor.schedule_minutes else None
            )
        monitor.save()
    return monitor


def reports_due() -> dict:
    """Beat: queue a report for each live route of every endpoint whose check is due and that had
    logged traffic in its window (an idle endpoint is not a failed check)."""
    from apps.serving.models import Endpoint

    now = timezone.now()
    queued = 0
    for endpoint in Endpoint.objects.filter(archived_at__isnull=True).select_related("monitor"):
        monitor = getattr(endpoint, "monitor", None)
        if monitor is None:
            monitor = EndpointMonitor.objects.create(endpoint=endpoint, next_check_at=now + dt.timedelta(minutes=60))
        if not monitor.schedule_minutes or (monitor.next_check_at and monitor.next_check_at > now):
            continue
        start = now - dt.timedelta(minutes=monitor.window_minutes)
        EndpointMonitor.objects.filter(pk=monitor.pk).update(
            next_check_at=now + dt.timedelta(minutes=monitor.schedule_minutes)
        )
        routes = Route.objects.filter(endpoint=endpoint, mode=Route.Mode.LIVE).values_list("name", flat=True)
        for route in routes:
            if not PredictionLog.objects.filter(
                endpoint=endpoint, route=route, status=200, created_at__gte=start
            ).exists():
                continue
            _report_create(
                requested_by=None, endpoint=endpoint, route=route, feature_view=None, start=start, end=now,
                reference_start=None, reference_end=None, thresholds=None, overrides=None, trigger="schedule",
            )  # fmt: skip
            queued += 1
    return {"queued": queued}
