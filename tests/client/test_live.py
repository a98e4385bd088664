"""PortalClient and the `portal` command against a live portal (uvicorn over the test database).

The command runs as a user would run it: `python -m portal_client ...` in a subprocess, with
PORTAL_URL/PORTAL_TOKEN in its environment (or a config file), and is judged by its exit status,
stdout and stderr. Everything it needs is made through the API, so the server's own vault, feature
store and online store hold it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from apps.accounts.services import token_create
from portal_client import PortalClient, PortalError
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
T0 = datetime(2024, 5, 1, tzinfo=UTC)


def tiny_onnx(scale: float) -> bytes:
    """y = x @ W with x [batch, 3] and W [3, 1] filled with `scale`: a valid model in a few bytes."""
    weight = numpy_helper.from_array(np.full((3, 1), scale, dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def portal(*argv: str, url: str | None = None, token: str | None = None, env: dict | None = None, stdin: str = ""):
    """Run `python -m portal_client argv...`; returns (exit status, stdout, stderr)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PORTAL_")}
    environment.update(env or {})
    if url:
        environment["PORTAL_URL"] = url
    if token:
        environment["PORTAL_TOKEN"] = token
    environment.setdefault("PORTAL_CONFIG", "/nonexistent/portal-config.toml")
    done = subprocess.run(
        [sys.executable, "-m", "portal_client", *argv],
        cwd=ROOT,
        env=environment,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def as_json(result) -> dict | list:
    code, out, err = result
    assert code == 0, (code, out, err)
    return json.loads(out)


def test_models_aliases_predict_and_promotions(portal_server, owner, stranger, tmp_path):
    _, key = token_create(user=owner, name="cli", scopes=["read", "write"], expires_days=1)
    client = PortalClient(portal_server, key, retries=0)
    v1, v2 = tmp_path / "v1.onnx", tmp_path / "v2.onnx"
    v1.write_bytes(tiny_onnx(1.0))
    v2.write_bytes(tiny_onnx(2.0))

    # register: the Python client creates the model, the command uploads the next version with a progress bar
    sent = []
    first = client.register_model("tiny-add", v1, metrics={"mse": 0.5}, progress=lambda d, t: sent.append((d, t)))
    assert first["version"] == 1 and first["artifact"]["sha256"] == hashlib.sha256(v1.read_bytes()).hexdigest()
    assert sent[-1] == (v1.stat().st_size, v1.stat().st_size)
    code, out, err = portal(
        "--progress", "models", "register", "tiny-add", str(v2), "--metric", "mse=0.25", "--tag", "cli",
        url=portal_server, token=key,
    )  # fmt: skip
    assert code == 0, err
    assert "Registered tiny-add version 2" in out and "upload v2.onnx" in err and "100.0%" in err
    versions = as_json(portal("models", "versions", "tiny-add", "--json", url=portal_server, token=key))
    assert [(v["version"], v["metrics"], v["tags"]) for v in versions] == [
        (2, {"mse": 0.25}, ["cli"]),
        (1, {"mse": 0.5}, []),
    ]
    listed = as_json(portal("--json", "models", "list", url=portal_server, token=key))
    assert [m["name"] for m in listed] == ["tiny-add"] and listed[0]["latest_version"] == 2
    code, out, _ = portal("models", "list", url=portal_server, token=key)
    assert out.splitlines()[0].split()[:2] == ["name", "latest_version"] and "tiny-add" in out

    # download: streamed to a file, checked against X-Content-SHA256, the same bytes
    target = tmp_path / "copy.onnx"
    got = as_json(
        portal("models", "download", "tiny-add", "2", "-o", str(target), "--json", url=portal_server, token=key)
    )
    assert target.read_bytes() == v2.read_bytes() and got["sha256"] == hashlib.sha256(v2.read_bytes()).hexdigest()
    client.download_version("tiny-add", 1, tmp_path / "one.onnx")
    assert (tmp_path / "one.onnx").read_bytes() == v1.read_bytes()

    # aliases: set and read; a protected alias is not moved, and the command says why
    got = as_json(portal("alias", "set", "tiny-add", "staging", "1", "--json", url=portal_server, token=key))
    assert got["version"] == 1
    code, out, _ = portal("alias", "get", "tiny-add", "staging", url=portal_server, token=key)
    assert code == 0 and out.strip() == "tiny-add@staging -> version 1"
    assert client.protect_alias("tiny-add", "staging")["protected"] is True
    code, out, err = portal("alias", "set", "tiny-add", "staging", "2", url=portal_server, token=key)
    assert code == 1 and out == "" and "refused (409)" in err and "/api/v1/promotions/" in err
    assert client.get_alias("tiny-add", "staging")["version"] == 1
    code, out, _ = portal("alias", "get", "tiny-add", "staging", url=portal_server, token=key)
    assert out.strip() == "tiny-add@staging -> version 1 (protected)"
    got = as_json(portal("models", "download", "tiny-add", "staging", "-o", str(tmp_path / "s.onnx"), "--json",
                         url=portal_server, token=key))  # fmt: skip
    assert got["version"] == 1 and (tmp_path / "s.onnx").read_bytes() == v1.read_bytes()

    # promotions: the way to move a protected alias
    made = as_json(portal(
        "promote", "request", "tiny-add", "2", "production", "--justification", "lower mse", "--change-type", "standard",
        "--risk", "low", "--json", url=portal_server, token=key,
    ))  # fmt: skip
    assert made["state"] in ("checks_running", "checks_failed", "awaiting_approval") and made["version"] == 2
    status = as_json(portal("promote", "status", str(made["id"]), "--json", url=portal_server, token=key))
    assert status["id"] == made["id"] and status["target_alias"] == "production"
    code, out, _ = portal("promote", "status", str(made["id"]), url=portal_server, token=key)
    assert code == 0 and f"Promotion {made['id']}: tiny-add v2 -> production" in out
    assert client.get_promotion(made["id"])["model"] == "tiny-add"

    # predict on an endpoint following the staging alias (a token naming the endpoint)
    client.request("POST", "endpoints/", json={
        "name": "tiny", "routes": [{"name": "main", "model": "tiny-add", "alias": "staging", "weight": 100}],
    })  # fmt: skip
    _, predictor = token_create(user=owner, name="svc", scopes=["predict"], expires_days=1, endpoints=["tiny"])
    answer = PortalClient(portal_server, predictor, retries=0).predict("tiny", [[1, 2, 3], [0, 0, 1]], key="k1")
    assert answer["outputs"] == {"y": [[6.0], [1.0]]} and answer["version"] == 1 and answer["route"] == "main"
    code, out, err = portal("predict", "tiny", url=portal_server, token=predictor, stdin='{"inputs": [[1, 1, 1]]}')
    assert code == 0 and out.splitlines()[0] == '{"y": [[3.0]]}', err
    code, _, err = portal("predict", "tiny", "--inputs", "[[1, 2]]", url=portal_server, token=predictor)
    assert code == 1 and "refused (400)" in err

    # refusals: a stranger sees nothing, a bad token is told so, a bad argument exits 2
    _, other = token_create(user=stranger, name="s", scopes=["read", "write"], expires_days=1)
    with pytest.raises(PortalError) as info:
        PortalClient(portal_server, other, retries=0).get_model("tiny-add")
    assert info.value.status == 404
    code, out, err = portal(
        "models", "download", "tiny-add", "1", "-o", str(tmp_path / "x"), url=portal_server, token=other
    )
    assert code == 1 and "refused (404)" in err and not (tmp_path / "x").exists()
    code, out, err = portal("models", "list", url=portal_server, token="ptk_bad_token")  # pragma: allowlist secret
    assert code == 1 and "refused (401)" in err and "check the token" in err
    code, out, _ = portal(
        "--json", "models", "list", url=portal_server, token="ptk_bad_token"
    )  # pragma: allowlist secret
    assert code == 1 and json.loads(out)["error"]["status"] == 401
    code, _, err = portal("models", "list", url=portal_server)
    assert code == 2 and "portal login" in err


def test_config_file_written_by_login_and_precedence(portal_server, owner, stranger, tmp_path):
    _, key = token_create(user=owner, name="cli", scopes=["read"], expires_days=1)
    _, other = token_create(user=stranger, name="cli", scopes=["read"], expires_days=1)
    config = tmp_path / "portal" / "config.toml"
    env = {"PORTAL_CONFIG": str(config)}
    code, out, err = portal("login", "--url", portal_server, "--token", "ptk_nope", env=env)  # pragma: allowlist secret
    assert code == 1 and "refused (401)" in err and not config.exists()  # a token that does not work is not saved
    code, out, err = portal("login", "--url", portal_server, "--token", key, env=env)
    assert code == 0 and f"as {owner.username}" in out, err
    assert config.stat().st_mode & 0o777 == 0o600 and key in config.read_text()
    assert as_json(portal("whoami", "--json", env=env))["username"] == owner.username  # the file
    assert as_json(portal("whoami", "--json", env=env, token=other))["username"] == stranger.username  # env beats file
    got = as_json(portal("whoami", "--json", "--token", key, env=env, token=other))  # flag beats env
    assert got["username"] == owner.username
    config.chmod(0o640)
    code, _, err = portal("whoami", env=env)
    assert code == 2 and "chmod 600" in err


def test_features_and_training_sets(portal_server, owner, tmp_path):
    _, key = token_create(user=owner, name="cli", scopes=["read", "write", "features"], expires_days=1)
    client = PortalClient(portal_server, key, retries=0)
    client.request(
        "POST", "entities/", json={"name": "shopper", "join_keys": [{"name": "shopper_id", "dtype": "int64"}]}
    )
    client.request("POST", "feature-views/", json={
        "name": "shopper-stats", "entity": "shopper", "ttl_seconds": 0, "source": "push",
        "features": [{"name": "balance", "dtype": "float64"}, {"name": "email", "dtype": "string", "pii": True}],
    })  # fmt: skip
    stamp = (T0 + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    rows = [
        {"shopper_id": k, "event_timestamp": stamp, "balance": 10.0 * k, "email": f"s{k}@example.com"} for k in (1, 2)
    ]
    client.request("POST", "feature-views/shopper-stats/push", json=rows)

    online = client.online_features(["shopper-stats:balance"], {"shopper_id": [1, 2, 3]})
    assert online["results"]["shopper-stats:balance"] == {
        "values": [10.0, 20.0, None],
        "statuses": ["present", "present", "missing"],
    }
    code, out, err = portal("features", "online", "shopper-stats:balance", "--entity", "shopper_id=2,3",
                            url=portal_server, token=key)  # fmt: skip
    assert code == 0, err
    assert [line.split() for line in out.splitlines()] == [
        ["shopper_id", "shopper-stats:balance"], ["2", "20.0"], ["3", "(missing)"],
    ]  # fmt: skip

    entity_rows = tmp_path / "entities.json"
    later = (T0 + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    entity_rows.write_text(json.dumps([{"shopper_id": k, "event_timestamp": later, "label": k % 2} for k in (1, 2)]))
    built = as_json(portal(
        "training-sets", "build", "shoppers", "--features", "shopper-stats:balance,shopper-stats:email",
        "--entity-rows", str(entity_rows), "--json", url=portal_server, token=key,
    ))  # fmt: skip
    assert built["row_count"] == 2
    table = tmp_path / "entities.csv"
    table.write_text(f"shopper_id,event_timestamp,label\n1,{later},1\n")
    from_file = client.build_training_set("from-csv", ["shopper-stats:balance"], entity_table=table)
    assert from_file["row_count"] == 1

    rows_back = client.training_set_data(built["id"], as_="rows")
    assert sorted((r["shopper_id"], r["balance"], r["label"]) for r in rows_back) == [(1, 10.0, 1), (2, 20.0, 0)]
    arrow = client.training_set_data(built["id"])
    assert arrow.num_rows == 2 and sorted(arrow.column("balance").to_pylist()) == [10.0, 20.0]
    assert sorted(client.training_set_data(built["id"], as_="pandas")["shopper_id"]) == [1, 2]
    printed = as_json(portal("training-sets", "data", str(built["id"]), url=portal_server, token=key))
    assert sorted(r["balance"] for r in printed) == [10.0, 20.0]
    csv_path = tmp_path / "set.csv"
    code, out, err = portal(
        "training-sets", "data", str(built["id"]), "-o", str(csv_path), url=portal_server, token=key
    )
    assert code == 0 and csv_path.read_text().splitlines()[0].count(",") >= 3, err


def test_template_job_launched_waited_and_logged(portal_server, live_worker, owner):
    _, key = token_create(user=owner, name="cli", scopes=["read", "write"], expires_days=1)
    client = PortalClient(portal_server, key, retries=0)
    params = ["--param", "epochs=2", "--param", "batch_size=256", "--param", "hidden_units=8", "--param", "layers=1"]
    code, out, err = portal(
        "train", "tabular-mlp-classifier", *params, "--param", "patience=0", "--seed", "1", "--wait",
        "--wait-timeout", "150", "--json", "--progress", url=portal_server, token=key,
    )  # fmt: skip
    job = json.loads(out)
    assert code == 0 and job["state"] == "succeeded", (job.get("error"), err, live_worker.log_path.read_text()[-2000:])
    assert job["model_version"]["version"] >= 1 and "job " in err  # the bar went to stderr, the JSON alone to stdout
    status = as_json(portal("jobs", "status", str(job["id"]), "--json", url=portal_server, token=key))
    assert status["state"] == "succeeded" and status["run"] == job["run"]
    client.append_log(job["run"], "from the test\n")
    code, out, _ = portal("jobs", "log", str(job["id"]), url=portal_server, token=key)
    assert code == 0 and out.endswith("from the test\n")
    code, out, err = portal("jobs", "cancel", str(job["id"]), url=portal_server, token=key)
    assert code == 1 and "refused (409)" in err  # already final

    # cancel a queued job through the client, and wait for it to end: exit 3 for a job that did not succeed
    queued = client.launch_job("tabular-mlp-classifier", params={"epochs": 500, "batch_size": 8, "patience": 0})
    assert client.cancel_job(queued["id"])["id"] == queued["id"]
    assert client.wait_job(queued["id"], timeout=60, poll_s=0.2)["state"] == "cancelled"
    code, out, _ = portal("jobs", "wait", str(queued["id"]), url=portal_server, token=key)
    assert code == 3 and f"Job {queued['id']} cancelled" in out
    code, out, _ = portal("train", "--list", url=portal_server, token=key)
    assert code == 0 and "tabular-mlp-classifier" in out and out.split()[:3] == ["name", "task", "default_dataset"]
    code, _, err = portal("train", "no-such-template", url=portal_server, token=key)
    assert code == 1 and "refused (400)" in err


def test_scripts_registered_versioned_and_launched(portal_server, owner, admin_user, team, tmp_path):
    from apps.training.scripts.services import script_launch_grant

    _, key = token_create(user=owner, name="cli", scopes=["read", "write"], expires_days=1)
    client = PortalClient(portal_server, key, retries=0)
    script = tmp_path / "train.py"
    # long enough that the cancel below always finds it queued or running, whichever worker takes it
    script.write_text("import os, time\nprint('hello from', os.environ.get('PORTAL_PARAMS'))\ntime.sleep(60)\n")
    code, out, err = portal("scripts", "register", "hello-train", str(script), "--team", team.slug, "--progress",
                            url=portal_server, token=key)  # fmt: skip
    assert code == 0 and out.strip() == "Registered script hello-train version 1." and "upload train.py" in err, err
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "main.py").write_text("from pkg.util import hello\nhello()\n")
    (project / "pkg" / "util.py").write_text("def hello():\n    print('hi')\n")
    code, out, err = portal("scripts", "register", "hello-train", str(project), "--new-version", "--entry-point",
                            "main.py", url=portal_server, token=key)  # fmt: skip
    assert code == 0 and "version 2" in out, err
    versions = as_json(portal("scripts", "versions", "hello-train", "--json", url=portal_server, token=key))
    assert sorted((v["version"], v["entry_point"]) for v in versions) == [(1, "train.py"), (2, "main.py")]
    assert all(len(v["digest"].removeprefix("sha256:")) == 64 for v in versions)
    code, _, err = portal("scripts", "register", "hello-train", str(script), url=portal_server, token=key)
    assert code == 1 and "refused (" in err  # the name is taken

    code, _, err = portal("train", "--script", "hello-train:2", url=portal_server, token=key)
    assert code == 1 and "refused (403)" in err and "script-launch permission" in err
    script_launch_grant(team=team, actor=admin_user)
    launched = as_json(portal("train", "--script", "hello-train:1", "--param", "lr=0.1", "--team", team.slug,
                              "--max-memory-mb", "512", "--json", url=portal_server, token=key))  # fmt: skip
    job = client.get_job(launched["id"])
    assert job["state"] in ("queued", "running") and job["params"] == {"lr": 0.1}
    assert client.cancel_job(job["id"])["id"] == job["id"]
    assert client.wait_job(job["id"], timeout=60, poll_s=0.2)["state"] == "cancelled"
