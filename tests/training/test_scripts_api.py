"""Training scripts: register and version them (validation of files and archives), and launching
them needs the per-team script-launch permission (403 without, strangers 404), audited with the digest."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.core.errors import Forbidden
from apps.core.models import AuditEntry
from apps.training.models import TrainingJob
from apps.training.scripts.services import script_launch_grant, script_register
from tests.conftest import api_client_for

SCRIPTS = "/api/v1/training/scripts/"
JOBS = "/api/v1/training/jobs/"
TRAIN_PY = b"import os\nprint('hello', os.environ.get('PORTAL_PARAMS'))\n"


def py_file(name="train.py", content=TRAIN_PY):
    return SimpleUploadedFile(name, content, content_type="text/x-python")


def zip_file(members: dict[str, bytes], name="project.zip"):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/zip")


def tar_file(members: dict[str, bytes], name="project.tar.gz", link: str | None = None):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type="application/gzip")


def register(client, name="my-script", file=None, **extra):
    return client.post(SCRIPTS, {"name": name, "file": file or py_file(), **extra}, format="multipart")


@pytest.mark.django_db
def test_register_py_then_next_version_with_digest(owner, stranger):
    client = api_client_for(owner)
    response = register(client, description="first")
    assert response.status_code == 201, response.json()
    assert response.json()["latest_version"] == 1 and response.json()["entry_point"] == "train.py"
    body = client.get(f"{SCRIPTS}my-script/versions/").json()
    assert body["results"][0]["digest"] == f"sha256:{hashlib.sha256(TRAIN_PY).hexdigest()}"
    assert body["results"][0]["size"] == len(TRAIN_PY) and body["results"][0]["created_by"] == "owner"
    project = tar_file({"pkg/main.py": b"print(1)\n", "pkg/util.py": b"X = 1\n"})
    second = client.post(f"{SCRIPTS}my-script/versions/", {"file": project, "entry_point": "pkg/main.py"})
    assert second.status_code == 201, second.json()
    assert second.json()["version"] == 2 and second.json()["kind"] == "tar.gz"
    assert client.get(f"{SCRIPTS}my-script/").json()["entry_point"] == "pkg/main.py"
    assert client.patch(f"{SCRIPTS}my-script/", {"description": "better"}, format="json").json()["description"] == (
        "better"
    )
    assert client.patch(f"{SCRIPTS}my-script/", {"entry_point": "x.py"}, format="json").status_code == 400
    assert [s["name"] for s in client.get(SCRIPTS).json()["results"]] == ["my-script"]
    other = api_client_for(stranger)
    assert other.get(f"{SCRIPTS}my-script/").status_code == 404
    assert other.get(f"{SCRIPTS}my-script/versions/").status_code == 404
    assert other.post(f"{SCRIPTS}my-script/versions/", {"file": py_file()}).status_code == 404
    assert other.get(SCRIPTS).json()["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "file, extra, field",
    [
        (SimpleUploadedFile("notes.txt", b"hello"), {}, "file"),
        (zip_file({"../evil.py": b"print(1)"}), {"entry_point": "evil.py"}, "file"),
        (zip_file({"/abs/train.py": b"print(1)"}), {}, "file"),
        (tar_file({"train.py": b"print(1)"}, link="train_link.py"), {}, "file"),
        (zip_file({"a.py": b"1", "b.py": b"2"}), {}, "entry_point"),
        (zip_file({"train.py": b"1"}), {"entry_point": "missing.py"}, "entry_point"),
        (zip_file({"train.py": b"1"}), {"entry_point": "../train.py"}, "entry_point"),
        (SimpleUploadedFile("project.zip", b"not a zip"), {}, "file"),
        (py_file(), {"entry_point": "other.py"}, "entry_point"),
    ],
)
def test_register_refuses_bad_uploads(owner, file, extra, field):
    response = register(api_client_for(owner), file=file, **extra)
    assert response.status_code == 400 and field in response.json(), response.json()


@pytest.mark.django_db
def test_register_refuses_bad_names_and_too_large(owner, settings):
    client = api_client_for(owner)
    assert "name" in register(client, name="Bad Name").json()
    assert register(client, name="dup").status_code == 201
    assert "name" in register(client, name="dup").json()
    assert client.post(SCRIPTS, {"name": "nofile"}, format="multipart").status_code == 400
    settings.TRAINING_SCRIPT_MAX_BYTES = 1024
    assert register(client, name="big", file=py_file(content=b"#" * 2000)).status_code == 413
    bomb = zip_file({"train.py": b"0" * 5000})  # small compressed, unpacks past the limit
    assert "file" in register(client, name="bomb", file=bomb).json()


@pytest.fixture
def script(owner):
    return script_register(actor=owner, name="tiny", file=py_file())


@pytest.mark.django_db
def test_launch_needs_team_grant_and_is_audited(owner, team, stranger, admin_user, script, sent_tasks):
    client = api_client_for(owner)
    payload = {"script": "tiny", "params": {"lr": 0.1, "name": "x"}, "max_runtime_s": 60, "max_memory_mb": 256}
    denied = client.post(JOBS, payload, format="json")
    assert denied.status_code == 403 and "script-launch" in denied.json()["detail"]
    assert api_client_for(stranger).post(JOBS, payload, format="json").status_code == 404
    with pytest.raises(Forbidden, match="platform admins"):
        script_launch_grant(team=team, actor=owner)
    assert script_launch_grant(team=team, actor=admin_user) is True
    assert AuditEntry.objects.filter(additional_data__event="trainingscript.launch_grant").count() == 1
    response = client.post(JOBS, payload, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    version = script.versions.get()
    assert body["script"] == {"name": "tiny", "version": 1, "digest": version.digest}
    assert body["max_memory_mb"] == 256 and body["template"] == "script:tiny"
    launch = AuditEntry.objects.get(additional_data__event="trainingscript.launch")
    assert launch.additional_data["digest"] == version.digest and launch.additional_data["job"] == body["id"]
    job = TrainingJob.objects.get(pk=body["id"])
    assert job.state == "queued" and job.run.tags["script_digest"] == version.digest
    # the stranger, even in a granted team, still cannot see the script
    assert api_client_for(stranger).post(JOBS, payload, format="json").status_code == 404
    script_launch_grant(team=team, actor=admin_user, granted=False)
    assert client.post(JOBS, payload, format="json").status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(
    "extra, field",
    [
        ({"params": {"bad name": 1}}, "params"),
        ({"params": {"x": {"nested": 1}}}, "params.x"),
        ({"script_version": 9}, "script_version"),
        ({"max_memory_mb": 10**12}, "max_memory_mb"),
        ({"max_runtime_s": 0}, "max_runtime_s"),
        ({"data": {"training_set": 999999}}, "data"),
        ({"data": {"artifact": "nope:1"}}, "data"),
        ({"data": {"dataset": "wine"}}, "data"),
        ({"template": "tabular-mlp-classifier"}, "template"),
        ({"resource_class": "tpu"}, "resource_class"),
    ],
)
def test_launch_refuses_bad_fields(owner, team, admin_user, script, sent_tasks, extra, field):
    script_launch_grant(team=team, actor=admin_user)
    response = api_client_for(owner).post(JOBS, {"script": "tiny", **extra}, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not TrainingJob.objects.exists()


@pytest.mark.django_db
def test_template_launch_refuses_script_only_fields(owner, sent_tasks):
    body = {"template": "tabular-mlp-classifier", "max_memory_mb": 100}
    response = api_client_for(owner).post(JOBS, body, format="json")
    assert response.status_code == 400 and "max_memory_mb" in response.json()


@pytest.mark.django_db
def test_job_token_is_revoked_when_a_queued_script_job_is_cancelled(owner, team, admin_user, script, sent_tasks):
    from apps.accounts.services import token_create
    from apps.training.scripts.launch import script_job_launch
    from apps.training.services import job_cancel

    script_launch_grant(team=team, actor=admin_user)
    owner = type(owner).objects.get(pk=owner.pk)  # a fresh instance: Django caches permissions per instance
    job = script_job_launch(actor=owner, script="tiny")
    token, key = token_create(user=owner, name=f"training-job-{job.pk}", scopes=["read"], expires_days=1)
    TrainingJob.objects.filter(pk=job.pk).update(api_token=token)
    job.refresh_from_db()
    assert token.revoked_at is None
    job_cancel(job=job, actor=owner)
    token.refresh_from_db()
    assert TrainingJob.objects.get(pk=job.pk).state == "cancelled"
    assert token.revoked_at is not None


@pytest.mark.django_db
def test_grant_command_needs_a_platform_admin_and_is_audited(owner, team, admin_user):
    from django.core.management import CommandError, call_command

    from apps.training.scripts.services import script_launch_granted

    with pytest.raises(CommandError, match="platform admins"):
        call_command("script_launch_grant", team.slug, "--admin", owner.username)
    assert not script_launch_granted(team)
    call_command("script_launch_grant", team.slug, "--admin", admin_user.username, stdout=io.StringIO())
    assert script_launch_granted(team)
    call_command("script_launch_grant", team.slug, "--admin", admin_user.username, "--revoke", stdout=io.StringIO())
    assert not script_launch_granted(team)
    events = AuditEntry.objects.filter(additional_data__event__startswith="trainingscript.launch_").order_by("pk")
    assert [e.additional_data["event"] for e in events] == [
        "trainingscript.launch_grant",
        "trainingscript.launch_revoke",
    ]
    assert {e.actor_id for e in events} == {admin_user.pk}


@pytest.mark.django_db
def test_script_pages_register_upload_and_launch(owner, team, admin_user, sent_tasks):
    from tests.conftest import page_client_for

    client = page_client_for(owner)
    bad = client.post("/training/scripts/", {"name": "paged", "file": SimpleUploadedFile("x.txt", b"1")})
    assert bad.status_code == 200 and b"Upload a .py file" in bad.content
    response = client.post("/training/scripts/", {"name": "paged", "file": py_file(), "description": "d"})
    assert response.status_code == 302 and response["Location"] == "/training/scripts/paged/"
    upload = client.post("/training/scripts/paged/upload/", {"file": zip_file({"../x.py": b"1"})})
    assert upload.status_code == 400 and b"Unsafe path" in upload.content
    assert client.post("/training/scripts/paged/upload/", {"file": py_file()}).status_code == 302
    page = client.get("/training/scripts/paged/")
    assert page.status_code == 200 and page.content.count(b"sha256:") == 2
    assert b"/training/scripts/paged/launch/" not in page.content
    assert client.get("/training/scripts/paged/launch/").status_code == 403
    script_launch_grant(team=team, actor=admin_user)
    assert b"/training/scripts/paged/launch/" in client.get("/training/scripts/paged/").content
    form = {"script_version": 1, "params": '{"lr": 0.1}', "resource_class": "cpu", "priority": 5, "max_runtime_s": 60}
    launched = client.post("/training/scripts/paged/launch/", form)
    assert launched.status_code == 302, launched.content[-2000:]
    job = TrainingJob.objects.get()
    assert job.script_version.version == 1 and job.params == {"lr": 0.1}
    detail = client.get(launched["Location"])
    assert b"paged</a> version 1" in detail.content
    bad_params = client.post("/training/scripts/paged/launch/", {**form, "params": "{not json"})
    assert bad_params.status_code == 200 and b"JSON object" in bad_params.content
    admin_pages = page_client_for(admin_user)
    assert b"paged" in admin_pages.get("/admin/training/trainingscript/").content
