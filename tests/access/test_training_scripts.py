"""Training scripts (API and pages): registering, versions, sharing, and launching, which needs the
script-launch permission of one of the caller's teams (owner and teammate are in the granted team;
the viewer and editor shares are not, so they get 403; strangers 404)."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.access.matrix import (
    LOGIN,
    AccessMatrix,
    api_changes,
    api_collection,
    api_reads,
    api_sharing,
    page_changes,
    page_collection,
    page_reads,
)

S = "/api/v1/training/scripts/{script}"
P = "/training/scripts/{script}"
SHARE = {"user": "bystander", "role": "viewer"}
UNSHARE = {"user": "viewer"}
LAUNCH = {"script": "matrix-script", "max_runtime_s": 60}
PAGE_LAUNCH = {"script_version": 1, "params": "{}", "resource_class": "cpu", "priority": 5, "max_runtime_s": 60}
# Launching: the granted team's members (owner, teammate) and platform admins; the viewer and editor
# shares may see the script but are in no granted team.
LAUNCHERS = dict(owner=201, viewer=403, editor=403, team=201, stranger=404, admin=201, anon=401, no_scope_token=403)
PAGE_LAUNCHERS = dict(owner=200, viewer=403, editor=403, team=200, stranger=404, admin=200, anon=LOGIN)


def upload(name: str = "train.py"):
    return SimpleUploadedFile(name, b"print('matrix')\n")


def scripts(owner, team) -> dict:
    from apps.core.permissions import team_grant
    from apps.training.scripts.services import LAUNCH_PERMISSION, script_register

    script = script_register(actor=owner, name="matrix-script", file=upload())
    team_grant(team, LAUNCH_PERMISSION)  # set-up: platform admins grant it through script_launch_grant
    return {"share": [script], "script": script.name}


class TestTrainingScriptApiAccess(AccessMatrix):
    make = staticmethod(scripts)
    rows = {
        ("GET", "/api/v1/training/scripts/"): api_collection(),
        ("POST", "/api/v1/training/scripts/"): api_collection(
            201, auditor=403, format="multipart", body=lambda w: {"name": "fresh-script", "file": upload()}
        ),
        ("GET", f"{S}/"): api_reads(),
        ("PATCH", f"{S}/"): api_changes(body={"description": "changed"}),
        ("GET", f"{S}/versions/"): api_reads(),
        ("POST", f"{S}/versions/"): api_changes(201, format="multipart", body=lambda w: {"file": upload()}),
        ("GET", f"{S}/sharing"): api_sharing(),
        ("POST", f"{S}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{S}/sharing"): api_sharing(204, body=UNSHARE),
        ("POST", "/api/v1/training/jobs/"): dict(LAUNCHERS, body=LAUNCH),
    }


class TestTrainingScriptPageAccess(AccessMatrix):
    make = staticmethod(scripts)
    rows = {
        ("GET", "/training/scripts/"): page_collection(),
        ("POST", "/training/scripts/"): page_collection(
            302, auditor=403, body=lambda w: {"name": "fresh-script", "file": upload()}
        ),
        ("GET", f"{P}/"): page_reads(),
        ("POST", f"{P}/upload/"): page_changes(body=lambda w: {"file": upload()}),
        ("GET", f"{P}/launch/"): PAGE_LAUNCHERS,
        ("POST", f"{P}/launch/"): dict(PAGE_LAUNCHERS, owner=302, team=302, admin=302, body=PAGE_LAUNCH),
        ("POST", f"{P}/share/"): page_changes(body=SHARE),
        ("POST", f"{P}/unshare/"): page_changes(body=UNSHARE),
    }
