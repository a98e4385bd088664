"""Reference profiles and drift reports end to end: the version's training data profiled, logged
traffic checked against it (a planted shift found, an unshifted sample not), alerts raised, and
the feature-view check between two ingest windows."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from django.utils import timezone

from apps.monitoring.models import Alert, DriftReport, ReferenceProfile
from apps.monitoring.services.profiles import profile_build_now, profile_request
from apps.monitoring.services.reports import monitor_update, report_request, report_run, reports_due
from tests.monitoring.conftest import cancer_rows, log_traffic

pytestmark = pytest.mark.django_db
REPORTS = "/api/v1/monitoring/drift-reports/"


def window():
    now = timezone.now()
    return now - dt.timedelta(hours=1), now


def run(report: DriftReport) -> DriftReport:
    return report_run(report.pk)


def test_profile_from_the_training_data(owner, cancer_model):
    profile = profile_request(actor=owner, version=cancer_model)
    assert profile.state == ReferenceProfile.State.QUEUED
    profile = profile_build_now(profile.pk)
    assert profile.state == "ready", profile.error
    assert profile.source == "demo:breast_cancer" and profile.rows == 569
    assert profile.columns[0] == "mean radius"  # scikit-learn's names for the bundled data
    feature = profile.data["features"]["mean radius"]
    assert feature["kind"] == "numeric" and feature["n"] == 569 and feature["missing"] == 0
    assert set(profile.data["predictions"]) == {"prediction"}


def test_profile_from_an_uploaded_file_names_what_is_missing(owner, cancer_model):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    X = np.random.default_rng(3).normal(size=(500, 30))
    table = pa.table({f"x{i}": X[:, i] for i in range(30)})
    buffer = io.BytesIO()
    pacsv.write_csv(table, buffer)
    buffer.seek(0)
    buffer.name, buffer.size = "reference.csv", len(buffer.getvalue())
    profile = profile_build_now(profile_request(actor=owner, version=cancer_model, file=buffer).pk)
    assert profile.state == "ready" and profile.source == "upload" and profile.rows == 500
    assert profile.upload is None  # the file's statistics are kept, the file is not

    bad = io.BytesIO(b"a,b\n1,2\n")
    bad.name, bad.size = "bad.csv", 8
    profile = profile_build_now(profile_request(actor=owner, version=cancer_model, file=bad).pk)
    assert profile.state == "failed" and "30 numeric feature columns" in profile.error


def test_unshifted_traffic_is_not_flagged_and_a_planted_shift_is(owner, cancer_endpoint, cancer_model):
    start, end = window()
    log_traffic(cancer_endpoint, cancer_model, cancer_rows(2000, seed=11))
    report = run(report_request(actor=owner, endpoint=cancer_endpoint, start=start, end=end))
    assert report.state == "succeeded", report.error
    assert report.status == "ok", {k: v["status"] for k, v in report.features.items() if v["status"] != "ok"}
    assert report.rows_current == 2000 and report.rows_reference == 569
    assert report.version == cancer_model
    assert not Alert.objects.filter(kind="drift").exists()

    DriftReport.objects.all().delete()
    from apps.serving.models import PredictionLog

    PredictionLog.objects.all().delete()
    shifted = {0: 1.6, 2: 1.6, 3: 2.0, 6: 3.0}
    log_traffic(cancer_endpoint, cancer_model, cancer_rows(2000, seed=12, shift=shifted))
    sensitive = {"drift_share": 0.1}  # 4 of 30 features drifting is drift for this endpoint
    report = run(report_request(actor=owner, endpoint=cancer_endpoint, start=start, end=end, thresholds=sensitive))
    flagged = {name for name, result in report.features.items() if result["status"] == "drift"}
    names = list(ReferenceProfile.objects.get(version=cancer_model).columns)
    assert {names[i] for i in shifted} <= flagged
    assert report.status == "drift" and set(report.summary["drifted"]) == flagged
    result = report.features[names[0]]
    assert {"psi", "ks", "js", "status", "threshold", "reference", "current"} <= set(result)
    alert = Alert.objects.get(kind="drift")
    assert alert.endpoint == cancer_endpoint and alert.count == 1 and alert.state == "open"
    assert alert.data == {"report": report.pk} and names[0] in alert.description
    again = run(report_request(actor=owner, endpoint=cancer_endpoint, start=start, end=end, thresholds=sensitive))
    alert.refresh_from_db()
    assert alert.count == 2 and alert.data == {"report": again.pk}  # the storm is one alert with a count
    assert list(alert.events.values_list("action", flat=True)) == ["opened", "repeated"]


def test_thresholds_and_overrides_change_the_verdict(owner, cancer_endpoint, cancer_model):
    start, end = window()
    names = None
    log_traffic(cancer_endpoint, cancer_model, cancer_rows(2000, seed=13, shift={0: 1.6}))
    strict = run(report_request(actor=owner, endpoint=cancer_endpoint, start=start, end=end))
    names = list(ReferenceProfile.objects.get(version=cancer_model).columns)
    assert strict.features[names[0]]["status"] == "drift"
    lenient = {names[0]: {"psi": 10.0, "ks_p": 0.0, "js": 10.0}}
    relaxed = run(report_request(actor=owner, endpoint=cancer_endpoint, start=start, end=end, overrides=lenient))
    assert relaxed.features[names[0]]["status"] != "drift"
    assert relaxed.features[names[0]]["threshold"]["psi"] == 10.0


def test_no_traffic_fails_with_a_reason(owner, cancer_endpoint):
    start, end = window()
    report = run(report_request(actor=owner, endpoint=cancer_endpoint, start=start, end=end))
    assert report.state == "failed" and "No logged live predictions" in report.error


def test_bad_requests_are_named(owner, cancer_endpoint, api_owner):
    start, end = window()
    answer = api_owner.post(
        REPORTS, {"endpoint": "cancer", "start": end.isoformat(), "end": start.isoformat()}, format="json"
    )
    assert answer.status_code == 400 and "end" in answer.json()
    answer = api_owner.post(REPORTS, {"endpoint": "cancer"}, format="json")
    assert answer.status_code == 400 and "start" in answer.json()
    answer = api_owner.post(REPORTS, {"endpoint": "cancer", "start": start.isoformat(), "end": end.isoformat(),
                                      "route": "nope"}, format="json")  # fmt: skip
    assert answer.status_code == 400 and "route" in answer.json()
    answer = api_owner.post(REPORTS, {"endpoint": "cancer", "start": start.isoformat(), "end": end.isoformat(),
                                      "thresholds": {"psi": "high"}}, format="json")  # fmt: skip
    assert answer.status_code == 400 and "thresholds" in answer.json()


def test_the_api_answers_202_and_strangers_get_404(owner, cancer_endpoint, cancer_model, api_owner, api_stranger):
    start, end = window()
    log_traffic(cancer_endpoint, cancer_model, cancer_rows(500, seed=5))
    answer = api_owner.post(
        REPORTS, {"endpoint": "cancer", "start": start.isoformat(), "end": end.isoformat()}, format="json"
    )
    assert answer.status_code == 202, answer.json()
    pk = answer.json()["id"]
    run(DriftReport.objects.get(pk=pk))
    body = api_owner.get(f"{REPORTS}{pk}/").json()
    assert body["state"] == "succeeded" and body["status"] in ("ok", "warning", "drift")
    assert body["version"] == {"model": "cancer-score", "version": 1}
    assert "mean radius" in body["features"] and "checks" in body["quality"] or body["quality"]
    assert api_stranger.get(f"{REPORTS}{pk}/").status_code == 404
    assert api_stranger.get(REPORTS).json()["count"] == 0
    stranger_post = {"endpoint": "cancer", "start": start.isoformat(), "end": end.isoformat()}
    assert api_stranger.post(REPORTS, stranger_post, format="json").status_code == 404


def test_profile_api(owner, cancer_model, api_owner, api_stranger):
    url = "/api/v1/models/cancer-score/versions/1/profile"
    assert api_owner.get(url).status_code == 404  # none built yet: says how to build one
    answer = api_owner.post(url, {}, format="json")
    assert answer.status_code == 202 and answer.json()["state"] == "queued"
    profile_build_now(ReferenceProfile.objects.get().pk)
    body = api_owner.get(url).json()
    assert body["state"] == "ready" and body["rows"] == 569
    assert "grid" not in body["features"]["mean radius"] and body["features"]["mean radius"]["missing_rate"] == 0
    assert api_stranger.get(url).status_code == 404 and api_stranger.post(url, {}, format="json").status_code == 404


def test_schedule_checks_routes_with_traffic(owner, cancer_endpoint, cancer_model, api_owner):
    answer = api_owner.patch("/api/v1/endpoints/cancer/monitoring", {"schedule_minutes": 5, "window_minutes": 30,
                                                                     "thresholds": {"psi": 0.3}}, format="json")  # fmt: skip
    assert answer.status_code == 200, answer.json()
    assert answer.json()["settings"]["thresholds"] == {"psi": 0.3}
    monitor_update(actor=owner, endpoint=cancer_endpoint, schedule_minutes=5)
    from apps.monitoring.models import EndpointMonitor

    EndpointMonitor.objects.update(next_check_at=timezone.now() - dt.timedelta(seconds=1))
    assert reports_due() == {"queued": 0}  # no traffic, no report
    log_traffic(cancer_endpoint, cancer_model, cancer_rows(100, seed=1), minutes_ago=1)
    EndpointMonitor.objects.update(next_check_at=timezone.now() - dt.timedelta(seconds=1))
    assert reports_due() == {"queued": 1}
    report = DriftReport.objects.get()
    assert report.trigger == "schedule" and report.requested_by is None and report.thresholds == {"psi": 0.3}
    assert reports_due() == {"queued": 0}  # not due again until the schedule says so


def test_overview_shows_traffic_drift_and_quality(owner, cancer_endpoint, cancer_model, api_owner, api_stranger):
    assert api_stranger.get("/api/v1/endpoints/cancer/monitoring").status_code == 404
    body = api_owner.get("/api/v1/endpoints/cancer/monitoring").json()
    assert body["endpoint"] == "cancer" and body["settings"]["schedule_minutes"] == 60
    assert body["quality"]["series"] == []
    assert (
        api_owner.patch("/api/v1/endpoints/cancer/monitoring", {"window_minutes": 0}, format="json").status_code == 400
    )
