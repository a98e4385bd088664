"""Run by tests/mlflow_api/test_import_*.py with the real MLflow client (.venv-mlflow): logs to
MLFLOW_TRACKING_URI (an mlruns folder, file://..., or a live tracking server) and prints, as JSON on its last line, what the
client reads back (run ids, the metric histories, the model version), for the test to compare.

Usage: write_mlruns.py OUT_DIR [EXPERIMENT_NAME (default "Churn Model")]

Two runs in the experiment: "first" (finished; params, a 5-step `loss` history and a NaN
`acc` point, tags, an ONNX file and a text artifact) and "second" (failed); the ONNX file is
registered as version 1 of model "churn" (create_model_version from the run's artifact: MLflow 3's
`register_model("runs:/...")` needs a logged model, whose ONNX flavour needs pandas) with the
alias "staging".
"""

import json
import math
import os
import sys
import time

import mlflow
import onnx
from mlflow import MlflowClient
from onnx import TensorProto, helper

out_dir = sys.argv[1]
experiment_name = sys.argv[2] if len(sys.argv) > 2 else "Churn Model"
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x], [y])
onnx_path = f"{out_dir}/model.onnx"
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), onnx_path)

client = MlflowClient()
mlflow.set_experiment(experiment_name)
with mlflow.start_run(run_name="first") as first:
    mlflow.log_params({"lr": 0.01, "layers": 3})
    t0 = int(time.time() * 1000) - 60_000
    for step in range(5):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=t0 + step * 1000)
    mlflow.log_metric("acc", math.nan, step=0)
    mlflow.set_tag("team", "risk")
    mlflow.log_artifact(onnx_path)
    mlflow.log_text("hello from mlflow", "notes/readme.txt")
with mlflow.start_run(run_name="second") as second:
    mlflow.log_param("lr", 0.1)
    mlflow.log_metric("loss", 2.5, step=0)
    mlflow.end_run(status="FAILED")

client.create_registered_model("churn", description="churn scorer")
version = client.create_model_version(
    "churn", source=f"{first.info.artifact_uri}/model.onnx", run_id=first.info.run_id, description="first export"
)
client.set_registered_model_alias("churn", "staging", version.version)

history = {
    key: [[m.step, m.value, m.timestamp] for m in client.get_metric_history(first.info.run_id, key)]
    for key in ("loss", "acc")
}
print(
    json.dumps(
        {
            "first": first.info.run_id,
            "second": second.info.run_id,
            "first_start": client.get_run(first.info.run_id).info.start_time,
            "first_end": client.get_run(first.info.run_id).info.end_time,
            "history": history,
            "version": version.version,
            "onnx_bytes": os.path.getsize(onnx_path),
        }
    )
)
