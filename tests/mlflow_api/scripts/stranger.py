"""The real MLflow client with someone else's token: every read and write of the run must fail
with RESOURCE_DOES_NOT_EXIST. Prints one JSON line {call: error code}. Usage: stranger.py <run id>"""

import json
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

run_id = sys.argv[1]
client = MlflowClient()
calls = {
    "get_run": lambda: client.get_run(run_id),
    "log_metric": lambda: client.log_metric(run_id, "loss", 0.1),
    "log_param": lambda: client.log_param(run_id, "x", "1"),
    "set_terminated": lambda: client.set_terminated(run_id),
    "list_artifacts": lambda: client.list_artifacts(run_id),
    "download": lambda: mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="model/weights.bin"),
}
codes = {}
for name, call in calls.items():
    try:
        call()
        codes[name] = "OK"
    except MlflowException as exc:
        codes[name] = exc.error_code
    except Exception as exc:  # the test names what happened instead
        codes[name] = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps(codes))
