"""The real client with a stranger's token: everything of another user's model and run reads as
missing. Prints one JSON document of MLflow error codes.

Usage: MLFLOW_TRACKING_URI=... MLFLOW_TRACKING_TOKEN=... python stranger.py <model name> <run id>
"""

import json
import sys

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException


def code_of(call) -> str | None:
    try:
        call()
    except MlflowException as exc:
        return exc.error_code
    return None


def main(name: str, run_id: str) -> dict:
    client = MlflowClient()
    return {
        "get_model": code_of(lambda: client.get_registered_model(name)),
        "get_version": code_of(lambda: client.get_model_version(name, "1")),
        "by_alias": code_of(lambda: client.get_model_version_by_alias(name, "staging")),
        "set_alias": code_of(lambda: client.set_registered_model_alias(name, "staging", "2")),
        "new_version": code_of(lambda: client.create_model_version(name, source=f"runs:/{run_id}/model")),
        "searched": [v.name for v in client.search_model_versions(f"name = '{name}'")],
        "models": [m.name for m in mlflow.search_registered_models()],
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
