"""Script jobs on a real Celery worker against a live portal: the script prints (streamed to the run's
log), reads its params, logs a metric through its job token over plain HTTP, leaves an ONNX file
that is registered with lineage, and its token is refused once the job ends; cancel kills the
processes it started; the runtime and memory limits fail the job saying which.

The worker listens on its own queue (`cpu.scriptjobs`, jobs launched in that region) with
PORTAL_PUBLIC_URL pointing at the live server, so another test's worker never takes these jobs."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.accounts.services import team_create
from apps.catalog import services as catalog
from apps.experiments.models import MetricPoint
from apps.training.models import TrainingJob
from apps.training.scripts.services import script_launch_grant, script_register
from tests.access.objects import onnx_bytes
from tests.conftest import ROOT, _die_with_parent, _process_env, _stop, api_client_for, serve_portal
from tests.training.conftest import transactional_db_mark

pytestmark = transactional_db_mark()
JOBS = "/api/v1/training/jobs/"
REGION = "scriptjobs"

TRAIN = r"""
import json, os, sys, urllib.request
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

params = json.loads(os.environ["PORTAL_PARAMS"])
print("hello from the script", params["greeting"], sys.argv[1:], flush=True)
print("a warning on stderr", file=sys.stderr, flush=True)
with open(params["report"], "w") as out:
    json.dump({"env": sorted(os.environ), "data_size": os.path.getsize(os.environ["PORTAL_DATA"]), "cwd": os.getcwd(), "home": os.environ["HOME"], "argv": sys.argv[1:],
               "token": os.environ["PORTAL_TOKEN"], "same": os.environ["PORTAL_TOKEN"] == os.environ["MLFLOW_TRACKING_TOKEN"]}, out)
body = json.dumps({"metrics": [{"key": "accuracy", "value": 0.93, "step": 1}]}).encode()
request = urllib.request.Request(
    f"{os.environ['PORTAL_URL']}/api/v1/runs/{os.environ['MLFLOW_RUN_ID']}/log-batch", data=body, method="POST",
    headers={"Authorization": f"Token {os.environ['PORTAL_TOKEN']}", "Content-Type": "application/json"},
)
print("logged", urllib.request.urlopen(request, timeout=30).status, flush=True)
# the same token through the MLflow-compatible API, as the mlflow client sends it (Bearer)
body = json.dumps({"run_id": os.environ["MLFLOW_RUN_ID"], "key": "mlflow_loss", "value": 0.25, "timestamp": 0,
                   "step": 2}).encode()
request = urllib.request.Request(
    f"{os.environ['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/runs/log-metric", data=body, method="POST",
    headers={"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}", "Content-Type": "application/json"},
)
print("mlflow", urllib.request.urlopen(request, timeout=30).status, flush=True)
weight = numpy_helper.from_array(np.ones((3, 2), dtype=np.float32), "W")
graph = helper.make_graph(
    [helper.make_node("MatMul", ["input", "W"], ["output"])], "tiny",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 2])], [weight],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
os.makedirs("outputs", exist_ok=True)
onnx.save(model, "outputs/model.onnx")
"""

MLFLOW_TRAIN = r"""
import os, time
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric
from onnx import TensorProto, helper, save

# written for MLflow, unchanged: the job's environment points the client at the portal and its run
with mlflow.start_run() as run:
    mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    now = int(time.time() * 1000)
    MlflowClient().log_batch(run.info.run_id, metrics=[Metric("acc", i / 100, now, i) for i in range(100)])
    mlflow.set_tag("phase", "job")
    mlflow.log_text("notes from the job", "notes.txt")
    print("logged through mlflow", run.info.run_id, flush=True)
graph = helper.make_graph(
    [helper.make_node("Relu", ["input"], ["output"])], "relu",
    [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 4])],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
os.makedirs("outputs", exist_ok=True)
save(model, "outputs/model.onnx")
"""

CHILD = r"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[sys.argv.index("--pidfile") + 1], "w").write(str(child.pid))
print("started child", child.pid, flush=True)
time.sleep(600)
"""

SLEEPER = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)\n"
FAILING = "import sys\nprint('about to fail', flush=True)\nprint('boom: bad input', file=sys.stderr)\nsys.exit(3)\n"
HOG = "import time\nblock = b'x' * (400 << 20)\nprint('allocated', flush=True)\ntime.sleep(120)\n"


@pytest.fixture(scope="module")
def script_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A live portal and a worker on `cpu.scriptjobs` whose PORTAL_PUBLIC_URL is that portal."""
    from apps.core.workers import workers_by_queue

    server = serve_portal(django_db_blocker, tmp_path_factory)
    base = next(server)
    log = tmp_path_factory.mktemp("script-worker") / "worker.log"
    with django_db_blocker.unblock():
        env = {
            **_process_env(),
            "PORTAL_PUBLIC_URL": base,
            "TRAINING_SCRIPT_KILL_GRACE_S": "1",
            # the training environment: the real MLflow client (with numpy and onnx), not the portal's
            "TRAINING_SCRIPT_PYTHON": str(ROOT / ".venv-mlflow" / "bin" / "python"),
        }
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.child_process", "celery", "-A", "portal", "worker", "-Q", f"cpu.{REGION}",
         "-n", f"scripts-{REGION}@%h", "--concurrency", "1", "-l", "INFO", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    with django_db_blocker.unblock():
        while not workers_by_queue().get(f"cpu.{REGION}"):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(f"script worker did not come online:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
    process.log_path = log
    yield base, process
    _stop(process)
    next(server, None)


@pytest.fixture
def granted(owner, admin_user):
    team = team_create(name="Scripters", slug="scripters", members=[owner])
    script_launch_grant(team=team, actor=admin_user)
    return owner


def register(owner, name, source: str):
    return script_register(actor=owner, name=name, file=SimpleUploadedFile("train.py", source.encode()))


def launch(owner, script, **extra):
    body = {"script": script, "region": REGION, "max_runtime_s": 120, **extra}
    response = api_client_for(owner).post(JOBS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["id"]


def wait_for(job_id, predicate, worker, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = TrainingJob.objects.get(pk=job_id)
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} stuck in {job.state} ({job.error}):\n{worker.log_path.read_text()[-3000:]}")


def status_with(base: str, key: str, path: str) -> int:
    request = urllib.request.Request(f"{base}{path}", headers={"Authorization": f"Token {key}"})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_script_job_logs_through_its_token_and_registers_onnx(script_worker, granted, tmp_path):
    base, worker = script_worker
    script = register(granted, "trainer", TRAIN)
    report = tmp_path / "report.json"
    data = onnx_bytes()  # its data: a catalog artifact the owner may view, mounted as a file
    model = catalog.model_create(actor=granted, name="input-model")
    catalog.version_register(model=model, actor=granted, artifact=io.BytesIO(data), artifact_size=len(data))
    params = {"greeting": "hi", "report": str(report), "lr": 0.5}
    job_id = launch(granted, "trainer", params=params, data={"artifact": "input-model:1"})
    job = wait_for(job_id, lambda j: j.is_terminal, worker)
    assert job.state == "succeeded", f"{job.error}\n{job.run.log_tail}"
    log = job.run.log_tail
    assert "hello from the script hi" in log and "a warning on stderr" in log and "logged 200" in log
    seen = json.loads(report.read_text())
    assert seen["argv"][seen["argv"].index("--lr") + 1] == "0.5" and seen["same"]
    assert seen["data_size"] == len(data)
    assert seen["cwd"] == seen["home"] and seen["home"].startswith("/") and "portal-script-" in seen["home"]
    assert not {"DATABASE_URL", "PORTAL_SQLITE_PATH", "DJANGO_SECRET_KEY", "SECRET_KEY", "PORTAL_VAR_DIR"} & set(
        seen["env"]
    )
    assert {"MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "PORTAL_URL", "PORTAL_DATA", "PORTAL_PARAMS"} <= set(seen["env"])
    assert MetricPoint.objects.filter(run_id=job.run_id, key="accuracy", value=0.93).exists()
    assert MetricPoint.objects.filter(run_id=job.run_id, key="mlflow_loss", value=0.25, step=2).exists()
    version = job.model_version
    digest = script.versions.get().digest
    assert version is not None and version.signature and digest in version.code_version
    assert version.run_id == str(job.run_id)
    assert version.training_data_digest == f"sha256:{hashlib.sha256(data).hexdigest()}"
    # the job-scoped token worked during the job and is refused now that the job has ended
    assert status_with(base, seen["token"], f"/api/v1/runs/{job.run_id}/") == 401
    assert job.api_token.revoked_at is not None


def test_the_real_mlflow_client_logs_from_a_script_job(script_worker, granted):
    base, worker = script_worker
    register(granted, "mlflow-trainer", MLFLOW_TRAIN)
    job_id = launch(granted, "mlflow-trainer")
    job = wait_for(job_id, lambda j: j.is_terminal, worker)
    assert job.state == "succeeded", f"{job.error}\n{job.run.log_tail}"
    assert f"logged through mlflow {job.run_id}" in job.run.log_tail  # MLFLOW_RUN_ID: the job's own run
    points = MetricPoint.objects.filter(run_id=job.run_id)
    assert sorted(points.filter(key="loss").values_list("step", flat=True)) == [0, 1, 2]
    assert points.filter(key="acc").count() == 100
    assert dict(job.run.param_rows.values_list("key", "value")).items() >= {"lr": "0.01", "optimizer": "adam"}.items()
    assert job.run.artifacts.filter(path="notes.txt").exists()
    assert job.model_version is not None and job.model_version.run_id == str(job.run_id)
    assert job.api_token.revoked_at is not None


def test_cancel_kills_the_scripts_children(script_worker, granted, tmp_path):
    base, worker = script_worker
    register(granted, "spawner", CHILD)
    pidfile = tmp_path / "child.pid"
    job_id = launch(granted, "spawner", params={"pidfile": str(pidfile)})
    # its output streams to the run's log while it runs
    wait_for(job_id, lambda j: j.state == "running" and "started child" in j.run.log_tail, worker)
    child = int(pidfile.read_text())
    assert psutil.pid_exists(child)
    assert api_client_for(granted).post(f"{JOBS}{job_id}/cancel").status_code == 200
    job = wait_for(job_id, lambda j: j.is_terminal, worker, timeout=30)
    assert job.state == "cancelled"
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)
    assert job.api_token.revoked_at is not None


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_exit_code_runtime_and_memory_limits_fail_with_their_reason(script_worker, granted):
    base, worker = script_worker
    register(granted, "sleeper", SLEEPER)
    register(granted, "hog", HOG)
    slow = launch(granted, "sleeper", max_runtime_s=2)
    job = wait_for(slow, lambda j: j.is_terminal, worker)
    assert job.state == "failed" and "exceeded its maximum runtime of 2 s" in job.error
    register(granted, "failing", FAILING)
    failing = launch(granted, "failing")
    job = wait_for(failing, lambda j: j.is_terminal, worker)
    assert job.state == "failed" and "exited with code 3" in job.error and "boom: bad input" in job.error
    big = launch(granted, "hog", max_memory_mb=100)
    job = wait_for(big, lambda j: j.is_terminal, worker)
    assert job.state == "failed" and "exceeded its memory limit of 100 MB" in job.error, job.error
    assert job.api_token.revoked_at is not None
