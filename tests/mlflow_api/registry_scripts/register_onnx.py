"""A training script as users write it against MLflow, run by the real client (.venv-mlflow):
logs a tiny ONNX model as a run artifact, registers it, sets and reads aliases, searches and
downloads it; then tries to move the protected `champion` alias. Prints one JSON document.

Usage: MLFLOW_TRACKING_URI=... MLFLOW_TRACKING_TOKEN=... python register_onnx.py <model name> <workdir>
"""

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import onnx
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path) -> None:
    weight = numpy_helper.from_array(np.full((4, 2), 0.5, dtype=np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="register_onnx")
    model.ir_version = 8
    onnx.save(model, path)


def error_of(call) -> dict:
    try:
        call()
    except MlflowException as exc:
        return {"error_code": exc.error_code, "message": exc.message}
    return {"error_code": None}


def main(name: str, workdir: Path) -> dict:
    folder = workdir / "model"
    folder.mkdir(parents=True)
    tiny_onnx(folder / "model.onnx")
    # register_model("runs:/<run>/model") looks for MLflow's MLmodel file in the folder
    (folder / "MLmodel").write_text("flavors:\n  onnx:\n    data: model.onnx\n")
    mlflow.set_experiment("registry-client")
    with mlflow.start_run() as run:
        mlflow.log_param("units", 2)
        mlflow.log_artifacts(str(folder), artifact_path="model")
    run_id = run.info.run_id

    first = mlflow.register_model(f"runs:/{run_id}/model", name)
    client = MlflowClient()
    second = client.create_model_version(name, source=f"runs:/{run_id}/model/model.onnx", run_id=run_id)
    client.set_registered_model_alias(name, "staging", first.version)
    by_alias = client.get_model_version_by_alias(name, "staging")
    model = client.get_registered_model(name)
    versions = client.search_model_versions(f"name = '{name}'")
    by_run = mlflow.search_model_versions(filter_string=f"run_id = '{run_id}'")
    registered = mlflow.search_registered_models(filter_string=f"name LIKE '{name[:4]}%'")
    downloaded = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(workdir / "download")))
    champion = error_of(lambda: client.set_registered_model_alias(name, "champion", second.version))
    return {
        "run_id": run_id,
        "versions": [first.version, second.version],
        "sources": [first.source, second.source],
        "run_ids": [first.run_id, second.run_id],
        "by_alias": by_alias.version,
        "aliases": {a: v for a, v in model.aliases.items()},
        "searched": sorted(v.version for v in versions),
        "by_run": sorted((v.name, v.version) for v in by_run),
        "registered": [(m.name, [v.version for v in m.latest_versions]) for m in registered],
        "downloaded": sorted(p.name for p in downloaded.iterdir()),
        "download_matches": (downloaded / "model.onnx").read_bytes() == (folder / "model.onnx").read_bytes(),
        "champion": champion,
        "status": first.status,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], Path(sys.argv[2]))))
