"""Monitoring pages: the alert inbox and alert page with its actions, drift reports, an endpoint's
monitoring overview with "check drift now" and its settings, a version's reference profile.

Reports and profiles hold what the stats engine really produces (a small profile and comparison
built here with apps.monitoring.stats), stored as the task stores them (JSON round trip)."""

from __future__ import annotations

import io
import json
import re
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from apps.monitoring.models import Alert, AlertEvent, DriftReport, EndpointMonitor, ReferenceProfile
from apps.monitoring.services.alerts import alert_raise
from apps.monitoring.stats import drift_compare, profile_build, quality_check
from apps.serving.models import TrafficWindow
from tests.conftest import make_user, page_client_for, share_as

pytestmark = pytest.mark.django_db

MODEL = "monitored-model"
ENDPOINT = "monitored-endpoint"
ROUTE = {"name": "main", "model": MODEL, "version": 1, "weight": 100, "mode": "live"}
COLUMNS = [f"x{i}" for i in range(5)]


def _columns(seed: int, rows: int, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    columns = {name: rng.standard_normal(rows) + (shift if name in ("x1", "x3") else 0.0) for name in COLUMNS}
    columns["segment"] = rng.choice(np.array(["retail", "business"], dtype=object), rows, p=[0.7, 0.3])
    return columns


def stats_results() -> tuple[dict, dict, dict]:
    """(profile, drift, quality) as the engine returns them, after a JSON round trip: x1 and x3
    shifted, a new category in `segment`, values out of range in x0."""
    reference = _columns(1, 3000)
    rng = np.random.default_rng(9)
    profile = json.loads(json.dumps(profile_build(reference, predictions={"prediction": rng.random(3000)})))
    current = _columns(2, 1000, shift=1.5)
    current["segment"][:30] = "wholesale"
    current["x0"][:20] = 50.0
    drift = drift_compare(profile, current, predictions={"prediction": rng.random(1000) ** 3})
    quality = quality_check(profile, current)
    return profile, json.loads(json.dumps(drift)), json.loads(json.dumps(quality))


def monitoring_world(owner) -> dict:
    """A model with version 1, an endpoint on it, its ready profile, a succeeded report (and an
    older one, for the drift-over-time chart), a drift alert; one minute of traffic."""
    from apps.catalog import services as catalog
    from apps.serving.services.endpoints import endpoint_create
    from tests.access.objects import onnx_bytes

    model = catalog.model_create(actor=owner, name=MODEL, description="")
    data = onnx_bytes()
    version = catalog.version_register(
        model=model, actor=owner, artifact=io.BytesIO(data), artifact_size=len(data), metrics={"accuracy": 0.9}
    )
    endpoint = endpoint_create(actor=owner, name=ENDPOINT, routes=[ROUTE])
    profile, drift, quality = stats_results()
    ReferenceProfile.objects.create(
        version=version, state=ReferenceProfile.State.READY, source="training-set:loans", rows=3000,
        columns=[*COLUMNS, "segment"], data=profile, built_by=owner, built_at=timezone.now(),
    )  # fmt: skip
    now = timezone.now()
    reports = [
        DriftReport.objects.create(
            subject=DriftReport.Subject.ENDPOINT,
            endpoint=endpoint,
            route="main",
            version=version,
            start=now - timedelta(hours=2 - i),
            end=now - timedelta(hours=1 - i),
            state=DriftReport.State.SUCCEEDED,
            progress=1.0,
            status=drift["status"],
            quality_status=quality["status"],
            rows_current=1000,
            rows_reference=3000,
            features=drift["features"],
            predictions=drift["predictions"],
            quality=quality,
            summary={"reference_source": "training-set:loans", "share": drift["drift_share"]},
            requested_by=owner,
            finished_at=now,
        )  # fmt: skip
        for i in range(2)
    ]
    alert, _ = alert_raise(
        kind=Alert.Kind.DRIFT, dedup_key=f"drift:endpoint:{endpoint.pk}:main", title=f"Drift on {ENDPOINT}/main",
        severity=Alert.Severity.CRITICAL, endpoint=endpoint, object_url=f"/monitoring/reports/{reports[-1].pk}/",
        data={"report": reports[-1].pk},
    )  # fmt: skip
    TrafficWindow.objects.create(
        endpoint=endpoint, route="main", version=version, minute=now.replace(second=0, microsecond=0),
        requests=120, errors=3, latency_sum_ms=240.0,
    )  # fmt: skip
    return {
        "model": model, "version": version, "endpoint": endpoint, "report": reports[-1], "alert": alert,
        "share": [model, endpoint],
    }  # fmt: skip


@pytest.fixture
def world(owner):
    return monitoring_world(owner)


# --- alerts ------------------------------------------------------------------------------------


def test_inbox_shows_unresolved_alerts_by_default_and_filters(owner, world):
    resolved, _ = alert_raise(kind=Alert.Kind.JOB_FAILED, dedup_key="job:1", title="Job 1 failed", owner=owner)
    Alert.objects.filter(pk=resolved.pk).update(state=Alert.State.RESOLVED)
    client = page_client_for(owner)
    html = client.get("/monitoring/alerts/").content.decode()
    assert f"Drift on {ENDPOINT}/main" in html and "Job 1 failed" not in html
    assert f'href="/monitoring/alerts/{world["alert"].pk}/"' in html and "critical" in html
    assert f'href="/monitoring/reports/{world["report"].pk}/"' in html  # the subject links to what raised it
    html = client.get("/monitoring/alerts/?state=resolved").content.decode()
    assert "Job 1 failed" in html and "Drift on" not in html
    html = client.get("/monitoring/alerts/?state=&severity=info").content.decode()
    assert "No alerts match" in html


def test_inbox_ignores_an_unknown_filter_value(owner, world):
    response = page_client_for(owner).get("/monitoring/alerts/?severity=apocalyptic")
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()


def test_alert_page_shows_history_and_actions_for_who_may_act(owner, world):
    alert = world["alert"]
    html = page_client_for(owner).get(f"/monitoring/alerts/{alert.pk}/").content.decode()
    assert "opened" in html and "Acknowledge" in html and "Resolve" in html and "Assign" in html
    viewer = make_user("alert-viewer")
    share_as(world["endpoint"], viewer, "viewer")
    html = page_client_for(viewer).get(f"/monitoring/alerts/{alert.pk}/").content.decode()
    assert alert.title in html and 'action="/monitoring/alerts/' not in html
    assert "acting on it" in html


def test_acknowledge_resolve_and_assign_through_the_page(owner, world):
    alert = world["alert"]
    client = page_client_for(owner)
    response = client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/", {"note": "looking"})
    assert response.status_code == 302 and response["Location"] == f"/monitoring/alerts/{alert.pk}/"
    alert.refresh_from_db()
    assert alert.state == Alert.State.ACKNOWLEDGED and alert.assignee == owner
    editor = make_user("alert-editor")
    share_as(world["endpoint"], editor, "editor")
    assert client.post(f"/monitoring/alerts/{alert.pk}/assign/", {"assignee": "alert-editor"}).status_code == 302
    alert.refresh_from_db()
    assert alert.assignee == editor
    assert client.post(f"/monitoring/alerts/{alert.pk}/resolve/", {"note": "retrained"}).status_code == 302
    alert.refresh_from_db()
    assert alert.state == Alert.State.RESOLVED
    notes = list(AlertEvent.objects.filter(alert=alert).values_list("action", "note"))
    assert ("acknowledged", "looking") in notes and ("resolved", "retrained") in notes
    html = client.get(f"/monitoring/alerts/{alert.pk}/").content.decode()
    assert "assigned to alert-editor" in html and "retrained" in html


def test_acting_twice_shows_the_conflict_as_a_message(owner, world):
    alert = world["alert"]
    client = page_client_for(owner)
    client.post(f"/monitoring/alerts/{alert.pk}/resolve/")
    response = client.post(f"/monitoring/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 409
    assert "only an open alert can be acknowledged" in response.content.decode()
    response = client.post(f"/monitoring/alerts/{alert.pk}/resolve/")
    assert response.status_code == 409 and "already resolved" in response.content.decode()


def test_assigning_someone_who_may_not_act_is_an_inline_error(owner, world):
    make_user("outsider")
    response = page_client_for(owner).post(f"/monitoring/alerts/{world['alert'].pk}/assign/", {"assignee": "outsider"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "who may act on this alert" in html and "is-invalid" in html
    world["alert"].refresh_from_db()
    assert world["alert"].assignee is None


# --- reports -----------------------------------------------------------------------------------


def test_report_list_filters_by_endpoint_and_status(owner, world):
    client = page_client_for(owner)
    html = client.get("/monitoring/reports/").content.decode()
    assert f'href="/monitoring/reports/{world["report"].pk}/"' in html and ENDPOINT in html
    assert "No drift reports match" in client.get("/monitoring/reports/?endpoint=other").content.decode()
    status = world["report"].status
    other = next(s for s in DriftReport.Status.values if s != status)
    assert "No drift reports match" in client.get(f"/monitoring/reports/?status={other}").content.decode()
    assert ENDPOINT in client.get(f"/monitoring/reports/?status={status}").content.decode()


def test_report_page_shows_features_drifted_first_quality_and_charts(owner, world):
    report = world["report"]
    response = page_client_for(owner).get(f"/monitoring/reports/{report.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    table = html[html.index('<h2 class="h5">Per feature') :]
    assert table.index(">x1<") < table.index(">x0<") and table.index(">x3<") < table.index(">x2<")
    assert "wholesale" in html  # the new category, with its example
    assert "outside [" in html and "50" in html  # x0's out-of-range values
    charts = response.context["charts"]
    assert set(charts["features"]) == {*COLUMNS, "segment"}
    x1 = charts["features"]["x1"]
    assert x1["reference"]["labels"] == x1["current"]["labels"] and sum(x1["current"]["counts"]) == 1000
    assert "prediction" in charts["predictions"]
    assert 'id="report-charts"' in html and 'id="drift-history"' in html  # two checks: the chart over time
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert all('type="application/json"' in tag for tag in inline), inline  # code lives in monitoring.js
    assert "hx-trigger" not in html


def test_running_report_polls_and_failed_report_shows_its_error(owner, world):
    report = world["report"]
    DriftReport.objects.filter(pk=report.pk).update(state=DriftReport.State.RUNNING, progress=0.3)
    html = page_client_for(owner).get(f"/monitoring/reports/{report.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' in html and "30 %" in html and "Per feature" not in html
    DriftReport.objects.filter(pk=report.pk).update(state=DriftReport.State.FAILED, error="Only 3 logged rows")
    html = page_client_for(owner).get(f"/monitoring/reports/{report.pk}/").content.decode()
    assert "The check failed" in html and "Only 3 logged rows" in html and "hx-trigger" not in html


def test_feature_view_report_masks_personal_data_for_who_may_not_see_it(owner, settings, tmp_path):
    from apps.features import services as features

    settings.FEATURE_STORE_ROOT = tmp_path / "features"
    entity = features.entity_create(actor=owner, name="customer", join_keys=[{"name": "customer_id", "dtype": "int64"}])
    view = features.feature_view_create(
        actor=owner, name="customer-stats", entity=entity, retention_days=3650,
        features=[{"name": "balance", "dtype": "float64"}, {"name": "email", "dtype": "string", "pii": True}],
    )  # fmt: skip
    rng = np.random.default_rng(3)
    emails = np.array([f"c{k}@example.com" for k in range(5)], dtype=object)
    reference = {"balance": rng.standard_normal(500), "email": rng.choice(emails, 500)}
    current = {"balance": rng.standard_normal(300) + 2, "email": np.array(["new@example.com"] * 300, dtype=object)}
    profile = profile_build(reference)
    drift = json.loads(json.dumps(drift_compare(profile, current)))
    quality = json.loads(json.dumps(quality_check(profile, current)))
    now = timezone.now()
    report = DriftReport.objects.create(
        subject=DriftReport.Subject.FEATURE_VIEW, feature_view=view, start=now - timedelta(hours=1), end=now,
        reference_start=now - timedelta(days=2), reference_end=now - timedelta(days=1),
        state=DriftReport.State.SUCCEEDED, status=drift["status"], quality_status=quality["status"],
        features=drift["features"], quality=quality, finished_at=now,
    )  # fmt: skip
    url = f"/monitoring/reports/{report.pk}/"
    response = page_client_for(owner).get(url)  # a data steward: sees the emails
    assert "new@example.com" in response.content.decode() and "email" in response.context["charts"]["features"]
    viewer = make_user("view-viewer")
    share_as(view, viewer, "viewer")
    response = page_client_for(viewer).get(url)
    html = response.content.decode()
    assert response.status_code == 200 and "new@example.com" not in html
    assert "masked: personal data" in html and set(response.context["charts"]["features"]) == {"balance"}


def test_strangers_get_404_on_reports_alerts_and_profiles(world, stranger):
    client = page_client_for(stranger)
    for url in (
        f"/monitoring/reports/{world['report'].pk}/",
        f"/monitoring/alerts/{world['alert'].pk}/",
        f"/endpoints/{ENDPOINT}/monitoring/",
        f"/models/{MODEL}/versions/1/profile/",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/monitoring/alerts/{world['alert'].pk}/resolve/").status_code == 404
    assert ENDPOINT not in client.get("/monitoring/reports/").content.decode()
    assert "Drift on" not in client.get("/monitoring/alerts/").content.decode()


# --- endpoint overview -------------------------------------------------------------------------


def test_endpoint_monitoring_shows_routes_verdicts_alerts_and_forms(owner, world):
    response = page_client_for(owner).get(f"/endpoints/{ENDPOINT}/monitoring/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "120" in html and f'href="/monitoring/reports/{world["report"].pk}/"' in html
    assert f"Drift on {ENDPOINT}/main" in html
    assert 'id="traffic-data"' in html and "Check drift" in html and "Save settings" in html
    assert "No outcomes in the last" in html  # model quality's empty state says what to do


def test_check_drift_now_queues_a_report_and_redirects_to_it(owner, world):
    end = timezone.now().replace(second=0, microsecond=0)
    start = end - timedelta(hours=1)
    response = page_client_for(owner).post(
        f"/endpoints/{ENDPOINT}/monitoring/check/",
        {"start": start.strftime("%Y-%m-%dT%H:%M"), "end": end.strftime("%Y-%m-%dT%H:%M"), "route": ""},
    )
    report = DriftReport.objects.order_by("-pk").first()
    assert response.status_code == 302 and response["Location"] == f"/monitoring/reports/{report.pk}/"
    assert report.state == DriftReport.State.QUEUED and report.route == "main" and report.requested_by == owner
    html = page_client_for(owner).get(response["Location"]).content.decode()
    assert "Waiting for a worker" in html and 'hx-trigger="every 2s"' in html


def test_check_drift_rejects_a_window_that_ends_before_it_starts(owner, world):
    response = page_client_for(owner).post(
        f"/endpoints/{ENDPOINT}/monitoring/check/", {"start": "2026-11-30T10:00", "end": "2026-11-30T09:00"}
    )
    assert response.status_code == 400
    assert "The end must be after the start." in response.content.decode()


def test_settings_form_saves_and_rejects_bad_values_inline(owner, world):
    client = page_client_for(owner)
    url = f"/endpoints/{ENDPOINT}/monitoring/settings/"
    response = client.post(url, {"schedule_minutes": "30", "window_minutes": "120", "psi": "0.3", "ks_p": ""})
    assert response.status_code == 302
    monitor = EndpointMonitor.objects.get(endpoint=world["endpoint"])
    assert (monitor.schedule_minutes, monitor.window_minutes, monitor.thresholds) == (30, 120, {"psi": 0.3})
    response = client.post(url, {"schedule_minutes": "-5", "window_minutes": "60", "js": "2"})
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count("invalid-feedback") >= 2 and "is-invalid" in html


def test_viewer_sees_settings_but_cannot_change_them(owner, world):
    viewer = make_user("endpoint-viewer")
    share_as(world["endpoint"], viewer, "viewer")
    client = page_client_for(viewer)
    html = client.get(f"/endpoints/{ENDPOINT}/monitoring/").content.decode()
    assert "Save settings" not in html and "Checked every" in html
    response = client.post(
        f"/endpoints/{ENDPOINT}/monitoring/settings/", {"schedule_minutes": "5", "window_minutes": "5"}
    )
    assert response.status_code == 403


# --- reference profile -------------------------------------------------------------------------


def test_profile_page_shows_quantiles_and_histograms(owner, world):
    response = page_client_for(owner).get(f"/models/{MODEL}/versions/1/profile/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "3,000 rows" in html and "training-set:loans" in html and "retail" in html
    charts = response.context["charts"]
    assert set(charts["features"]) == {*COLUMNS, "segment"} and "prediction" in charts["predictions"]
    assert "Rebuild the profile" in html


def test_profile_build_queues_and_refreshes_and_viewers_cannot(owner, world):
    client = page_client_for(owner)
    response = client.post(f"/models/{MODEL}/versions/1/profile/build/")
    assert response.status_code == 302 and response["Location"] == f"/models/{MODEL}/versions/1/profile/"
    profile = ReferenceProfile.objects.get(version=world["version"])
    assert profile.state == ReferenceProfile.State.QUEUED
    assert 'hx-trigger="every 2s"' in client.get(response["Location"]).content.decode()
    viewer = make_user("model-viewer")
    share_as(world["model"], viewer, "viewer")
    assert page_client_for(viewer).post(f"/models/{MODEL}/versions/1/profile/build/").status_code == 403
    html = page_client_for(viewer).get(f"/models/{MODEL}/versions/1/profile/").content.decode()
    assert "Build profile" not in html


def test_profile_build_rejects_a_file_that_is_not_a_table(owner, world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = SimpleUploadedFile("ref.csv", b"\x00\x01\x02 not,a\ncsv\x00", content_type="text/csv")
    response = page_client_for(owner).post(f"/models/{MODEL}/versions/1/profile/build/", {"file": bad})
    assert response.status_code == 400
    assert "neither Parquet nor CSV" in response.content.decode()


def test_version_without_profile_says_how_to_get_one(owner, world):
    ReferenceProfile.objects.filter(version=world["version"]).delete()
    html = page_client_for(owner).get(f"/models/{MODEL}/versions/1/profile/").content.decode()
    assert "no reference profile yet" in html and "Build profile" in html


# --- in a browser --------------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_draw_their_charts_in_a_browser_at_desktop_and_phone_width(owner, portal_server, page, login):
    from tests.browser import screenshot

    made = monitoring_world(owner)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    login("owner")
    pages = {
        "report": (
            f"/monitoring/reports/{made['report'].pk}/",
            ("#feature-chart", "#prediction-chart", "#history-psi-chart"),
        ),
        "endpoint": (f"/endpoints/{ENDPOINT}/monitoring/", ("#traffic-requests", "#traffic-latency")),
        "profile": (f"/models/{MODEL}/versions/1/profile/", ("#profile-grid", "#profile-predictions")),
        "alerts": ("/monitoring/alerts/", ()),
        "alert": (f"/monitoring/alerts/{made['alert'].pk}/", ()),
        "reports": ("/monitoring/reports/", ()),
    }
    for width in (1400, 360):
        page.set_viewport_size({"width": width, "height": 900})
        for name, (path, charts) in pages.items():
            page.goto(f"{portal_server}{path}")
            for chart in charts:
                page.wait_for_selector(f"{chart} .main-svg")
            screenshot(page, f"monitoring-{name}-{width}")
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 0, f"{name} at {width} px is {overflow} px wider than the screen"
    page.goto(f"{portal_server}/monitoring/reports/{made['report'].pk}/")
    page.select_option("#feature-select", "segment")
    page.wait_for_selector("#feature-chart .gtitle")
    assert "segment" in page.locator("#feature-chart .gtitle").text_content()
    # A running report polls (htmx) and the page reloads with its charts once the report is done.
    DriftReport.objects.filter(pk=made["report"].pk).update(state=DriftReport.State.RUNNING, progress=0.4)
    page.goto(f"{portal_server}/monitoring/reports/{made['report'].pk}/")
    assert page.locator("text=40 %").is_visible() and page.locator("#feature-chart").count() == 0
    DriftReport.objects.filter(pk=made["report"].pk).update(state=DriftReport.State.SUCCEEDED, progress=1.0)
    page.wait_for_selector("#feature-chart .main-svg", timeout=10_000)
    assert not errors, errors
