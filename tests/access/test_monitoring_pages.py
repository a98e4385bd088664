"""Monitoring pages: the alert inbox, an alert and its acknowledge/resolve/assign posts, drift
reports, an endpoint's monitoring page with its check and settings posts, a version's profile and
its build post.

Reports and alerts take their rights from their endpoint (viewers read, editors act); auditors
read every report and alert; strangers get 404 everywhere. Checking drift needs only `view` on
the endpoint; its settings and a profile build need `change` on the endpoint or model."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from tests.access.matrix import AccessMatrix, page_changes, page_collection, page_reads
from tests.monitoring.test_pages import ENDPOINT, MODEL, monitoring_world

A = "/monitoring/alerts/{alert}"
E = "/endpoints/{name}/monitoring"
V = "/models/{model}/versions/{version}/profile"


def build(owner, team) -> dict:
    made = monitoring_world(owner)
    return {
        "share": made["share"], "alert": made["alert"].pk, "report": made["report"].pk, "name": ENDPOINT,
        "model": MODEL, "version": made["version"].version,
    }  # fmt: skip


def window(world) -> dict:
    end = timezone.now().replace(second=0, microsecond=0)
    return {"start": (end - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"), "end": end.strftime("%Y-%m-%dT%H:%M")}


# Anyone who may view the endpoint may ask for a check (the service's rule): 302 to the report.
CHECK = page_reads(owner=302, viewer=302, editor=302, team=302, admin=302)


class TestMonitoringPageAccess(AccessMatrix):
    make = staticmethod(build)
    rows = {
        ("GET", "/monitoring/alerts/"): page_collection(auditor=200),
        ("GET", f"{A}/"): page_reads(auditor=200),
        ("POST", f"{A}/acknowledge/"): page_changes(body={"note": "on it"}, auditor=403),
        ("POST", f"{A}/resolve/"): page_changes(body={"note": "fixed"}, auditor=403),
        ("POST", f"{A}/assign/"): page_changes(body={"assignee": "owner"}, auditor=403),
        ("GET", "/monitoring/reports/"): page_collection(auditor=200),
        ("GET", "/monitoring/reports/{report}/"): page_reads(auditor=200),
        ("GET", f"{E}/"): page_reads(),
        ("POST", f"{E}/check/"): CHECK | {"body": window},
        ("POST", f"{E}/settings/"): page_changes(
            body={"schedule_minutes": "30", "window_minutes": "60", "psi": "0.25"}
        ),
        ("GET", f"{V}/"): page_reads(),
        ("POST", f"{V}/build/"): page_changes(body={}),
    }
