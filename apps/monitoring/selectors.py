"""Reads of monitoring, always through the decision point (apps/core/permissions.py): alerts,
drift reports, reference profiles, an endpoint's monitoring overview and its model quality."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.db.models import QuerySet
from django.utils import timezone

from apps.catalog.models import ModelVersion
from apps.core.errors import NotFound
from apps.core.permissions import Action, can_view_pii, require, restrict
from apps.monitoring.models import Alert, DriftReport, EndpointMonitor, ReferenceProfile
from apps.monitoring.sources import predictions_of
from apps.serving.models import Endpoint, Feedback, PredictionLog
from apps.serving.selectors import traffic_of

ALERT_RELATED = ("endpoint", "model", "feature_view", "assignee")


def alerts_visible(user, filters: dict | None = None) -> QuerySet[Alert]:
    """The alerts `user` may view, newest activity first; filters: state, severity, kind,
    endpoint (name), model (name)."""
    filters = filters or {}
    alerts = restrict(user, "view", Alert.objects.select_related(*ALERT_RELATED))
    for field in ("state", "severity", "kind"):
        if filters.get(field):
            alerts = alerts.filter(**{field: filters[field]})
    if filters.get("endpoint"):
        alerts = alerts.filter(endpoint__name=filters["endpoint"])
    if filters.get("model"):
        alerts = alerts.filter(model__name=filters["model"])
    return alerts.order_by("-last_seen", "-pk")


def alert_for(user, pk: int, action: Action = "view") -> Alert:
    alert = restrict(user, "view", Alert.objects.select_related(*ALERT_RELATED)).filter(pk=pk).first()
    if alert is None:
        raise NotFound("No alert matches the given query.")
    require(user, action, alert)
    return alert


def alert_history(alert: Alert) -> list[dict]:
    return [
        {"action": e.action, "actor": e.actor.username if e.actor_id else None, "note": e.note, "at": e.at}
        for e in alert.events.select_related("actor").order_by("at", "pk")
    ]


def open_alert_counts(user) -> dict[str, int]:
    """Unresolved alerts the user may see, per severity (the navbar's and the overview's badge)."""
    counts = {"critical": 0, "warning": 0, "info": 0}
    for severity in alerts_visible(user).exclude(state=Alert.State.RESOLVED).values_list("severity", flat=True):
        counts[severity] = counts.get(severity, 0) + 1
    return counts


def reports_visible(user, filters: dict | None = None) -> QuerySet[DriftReport]:
    """filters: endpoint (name), feature_view (name), status, state."""
    filters = filters or {}
    reports = restrict(
        user, "view", DriftReport.objects.select_related("endpoint", "feature_view", "version__model", "requested_by")
    )
    if filters.get("endpoint"):
        reports = reports.filter(endpoint__name=filters["endpoint"])
    if filters.get("feature_view"):
        reports = reports.filter(feature_view__name=filters["feature_view"])
    for field in ("status", "state"):
        if filters.get(field):
            reports = reports.filter(**{field: filters[field]})
    return reports.defer("features", "quality", "predictions").order_by("-created_at", "-pk")


def report_for(user, pk: int) -> DriftReport:
    report = (
        restrict(user, "view", DriftReport.objects.select_related("endpoint", "feature_view", "version__model"))
        .filter(pk=pk)
        .first()
    )
    if report is None:
        raise NotFound("No drift report matches the given query.")
    return report


def report_masked(user, report: DriftReport) -> dict:
    """The report's per-feature results and quality as `user` may see them: a feature view's PII
    features keep their scores and verdict but lose histograms and example values unless the user
    may see that view's PII (the feature store's rule for its own statistics)."""
    features, quality = report.features or {}, report.quality or {}
    if report.feature_view_id is None or can_view_pii(user, report.feature_view):
        return {"features": features, "quality": quality}
    pii = {f["name"] for f in report.feature_view.features if f.get("pii")}
    masked = {
        name: ({k: v for k, v in result.items() if k not in ("reference", "current")} | {"masked": True})
        if name in pii
        else result
        for name, result in features.items()
    }
    return {"features": masked, "quality": _mask_examples(quality, pii)}


def _mask_examples(value, pii: set[str], key: str = ""):
    if isinstance(value, dict):
        return {
            k: (
                "(masked: personal data)"
                if k == "examples" and key in pii
                else _mask_examples(v, pii, k if k in pii else key)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_examples(v, pii, key) for v in value]
    return value


def drift_history(user, endpoint: Endpoint, *, limit: int = 200) -> list[dict]:
    """Succeeded reports of the endpoint, oldest first: status, drifted share and per-feature PSI."""
    rows = (
        restrict(user, "view", DriftReport.objects.filter(endpoint=endpoint, state=DriftReport.State.SUCCEEDED))
        .only("pk", "route", "end", "status", "summary", "features")
        .order_by("-created_at")[:limit]
    )
    return [
        {
            "id": r.pk,
            "route": r.route,
            "at": r.end,
            "status": r.status,
            "share": (r.summary or {}).get("share"),
            "psi": {name: f.get("psi") for name, f in (r.features or {}).items() if f.get("psi") is not None},
        }  # fmt: skip
        for r in reversed(list(rows))
    ]


def profile_for(user, version: ModelVersion) -> ReferenceProfile | None:
    """The version's profile, for whoever may view the model (the caller fetched the version)."""
    require(user, "view", version.model)
    return ReferenceProfile.objects.filter(version=version).first()


def monitor_of(endpoint: Endpoint) -> EndpointMonitor:
    return EndpointMonitor.objects.filter(endpoint=endpoint).first() or EndpointMonitor(endpoint=endpoint)


def overview_of(user, endpoint: Endpoint, *, minutes: int = 60) -> dict:
    """The monitoring overview (`GET /api/v1/endpoints/{name}/monitoring`): traffic, latency and
    errors per route, the latest drift and quality verdict per route, open alerts, settings."""
    traffic = traffic_of(endpoint, minutes)
    latest: dict[str, DriftReport] = {}
    for report in reports_visible(user, {"endpoint": endpoint.name, "state": DriftReport.State.SUCCEEDED})[:50]:
        latest.setdefault(report.route, report)
    routes = []
    for entry in traffic["routes"]:
        report = latest.get(entry["route"])
        routes.append(entry | _verdict(report))
    for name, report in latest.items():
        if name not in {r["route"] for r in routes}:
            routes.append({"route": name, "requests": 0} | _verdict(report))
    monitor = monitor_of(endpoint)
    return {
        "endpoint": endpoint.name,
        "minutes": traffic["minutes"],
        "total": traffic["total"],
        "routes": routes,
        "series": traffic["series"],
        "alerts": list(alerts_visible(user, {"endpoint": endpoint.name}).exclude(state=Alert.State.RESOLVED)[:20]),
        "settings": {
            "schedule_minutes": monitor.schedule_minutes,
            "window_minutes": monitor.window_minutes,
            "thresholds": monitor.thresholds,
            "overrides": monitor.overrides,
            "next_check_at": monitor.next_check_at,
        },
    }


def _verdict(report: DriftReport | None) -> dict:
    if report is None:
        return {"drift_status": None, "quality_status": None, "report": None, "checked_at": None}
    return {"drift_status": report.status, "quality_status": report.quality_status, "report": report.pk,
            "checked_at": report.finished_at}  # fmt: skip


# --- model quality: outcomes matched to logged predictions --------------------------------------------


def model_quality(endpoint: Endpoint, *, days: int = 14, bucket_hours: int = 24) -> dict:
    """Per route and time bucket: outcomes received, their mean, and where the prediction was
    logged (the endpoint's log sample rate) accuracy and AUC (classes) or MAE and RMSE (scores),
    next to the metrics the version was registered with."""
    since = timezone.now() - timedelta(days=days)
    feedback = list(
        Feedback.objects.filter(endpoint=endpoint, created_at__gte=since).values_list(
            "prediction_id", "route", "version_id", "outcome", "predicted_at"
        )
    )
    logged = dict(
        PredictionLog.objects.filter(prediction_id__in=[f[0] for f in feedback], endpoint=endpoint)
        .values_list("prediction_id", "outputs")
        .iterator(chunk_size=2000)
    ) if feedback else {}  # fmt: skip
    groups: dict[tuple, list] = {}
    step = timedelta(hours=bucket_hours)
    for prediction_id, route, version_id, outcome, predicted_at in feedback:
        start = since + step * int((predicted_at - since) / step) if predicted_at >= since else since
        groups.setdefault((route, version_id, start), []).append((outcome, logged.get(prediction_id)))
    versions = {v.pk: v for v in ModelVersion.objects.filter(pk__in={k[1] for k in groups if k[1]})}
    series = []
    for (route, version_id, start), items in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][2])):
        version = versions.get(version_id)
        series.append({
            "route": route, "version": version.version if version else None, "start": start, "end": start + step,
            **_quality_numbers(items),
            "training": {k: v for k, v in (version.metrics or {}).items() if k in TRAINING_KEYS} if version else {},
        })  # fmt: skip
    return {"days": days, "bucket_hours": bucket_hours, "series": series}


TRAINING_KEYS = ("accuracy", "roc_auc", "auc", "f1_macro", "mae", "rmse", "r2", "val_accuracy", "val_rmse")


def _quality_numbers(items: list[tuple]) -> dict:
    outcomes = np.array([o for o, _ in items], dtype=np.float64)
    out = {"outcomes": len(items), "mean_outcome": float(outcomes.mean()) if len(items) else None, "matched": 0}
    pairs = [(o, outputs) for o, outputs in items if outputs]
    if not pairs:
        return out
    out["matched"] = len(pairs)
    truth = np.array([o for o, _ in pairs], dtype=np.float64)
    predicted = [predictions_of(outputs) for _, outputs in pairs]
    first = [p[0] if p is not None and len(p) else None for p in predicted]
    if all(isinstance(p, str) for p in first):  # classes
        out["accuracy"] = float(np.mean([p == str(int(t)) for p, t in zip(first, truth, strict=True)]))
        scores = [_positive_score(outputs) for _, outputs in pairs]
        if set(np.unique(truth)) <= {0.0, 1.0} and len(np.unique(truth)) == 2 and None not in scores:
            out["auc"] = _auc(np.array(scores, dtype=np.float64), truth)
    elif all(isinstance(p, float) for p in first):
        error = np.array(first, dtype=np.float64) - truth
        out["mae"], out["rmse"] = float(np.abs(error).mean()), float(np.sqrt((error**2).mean()))
    return out


def _positive_score(outputs: dict) -> float | None:
    for value in outputs.values():
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 2 and array.shape[1] == 2:
            return float(array[0, 1] - array[0, 0])  # monotone in P(class 1) for probabilities and logits alike
        return None
    return None


def _auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """ROC AUC by ranks (Mann-Whitney U), ties averaged."""
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = truth == 1
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
