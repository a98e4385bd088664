"""A training script written for MLflow, unchanged: run by the tests with the real client
(.venv-mlflow) and MLFLOW_TRACKING_URI / MLFLOW_TRACKING_TOKEN pointing at a live portal.

Prints one JSON line with what it logged and what it read back, for the test to compare.
Usage: train_tracking.py <experiment name> <work folder>
"""

import json
import sys
import time
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

experiment_name, work = sys.argv[1], Path(sys.argv[2])
mlflow.set_experiment(experiment_name)
with mlflow.start_run(run_name="baseline") as run:
    run_id = run.info.run_id
    mlflow.log_params({"lr": 0.01, "optimizer": "adam"})
    mlflow.log_param("epochs", 3)
    mlflow.set_tag("team", "risk")
    for step in range(3):  # one request per metric, as most scripts log
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    now = int(time.time() * 1000)
    MlflowClient().log_batch(
        run_id,
        metrics=[Metric("acc", 0.5 + i / 1000, now, i) for i in range(500)],
        params=[Param("depth", "4")],
        tags=[RunTag("phase", "batch")],
    )
    mlflow.log_metrics({"f1": 0.8, "auc": 0.9}, step=1)
    mlflow.log_text("hello from mlflow\n", "notes/readme.txt")
    weights = work / "weights.bin"
    weights.write_bytes(bytes(range(256)) * 4096)
    mlflow.log_artifact(str(weights), artifact_path="model")

client = MlflowClient()
fetched = client.get_run(run_id)
listed = sorted((f.path, f.is_dir) for f in client.list_artifacts(run_id))
listed_model = sorted((f.path, f.file_size) for f in client.list_artifacts(run_id, "model"))
copy = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/weights.bin", dst_path=str(work / "dl"))
text = mlflow.artifacts.load_text(f"runs:/{run_id}/notes/readme.txt")
history = [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")]
found = mlflow.search_runs(
    experiment_names=[experiment_name], filter_string="metrics.acc > 0.9 and params.optimizer = 'adam'",
    order_by=["metrics.loss ASC"], output_format="list",
)  # fmt: skip
print(json.dumps({
    "run_id": run_id,
    "experiment_id": fetched.info.experiment_id,
    "status": fetched.info.status,
    "run_name": fetched.info.run_name,
    "artifact_uri": fetched.info.artifact_uri,
    "params": fetched.data.params,
    "metrics": fetched.data.metrics,
    "tags": {k: v for k, v in fetched.data.tags.items()},
    "listed": listed,
    "listed_model": listed_model,
    "copy_ok": Path(copy).read_bytes() == weights.read_bytes(),
    "text": text,
    "history": history,
    "found": [r.info.run_id for r in found],
}))  # fmt: skip
