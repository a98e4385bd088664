"""MLflow's side of bench/serving.py, run by bench/.venvs/mlflow's python (never the portal's):
save an ONNX file as an MLflow model with the onnx flavour and its tensor signature, ready for
`mlflow models serve -m OUT_DIR --env-manager local`.

    bench/.venvs/mlflow/bin/python bench/serving_mlflow.py MODEL.onnx OUT_DIR

Prints `{"mlflow": "<version>"}` on its last line.
"""

import json
import sys

import mlflow
import mlflow.onnx
import numpy as np
import onnx
from mlflow.models import infer_signature


def main(onnx_path: str, out_dir: str) -> None:
    model = onnx.load(onnx_path)
    width = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    example = np.zeros((2, width), dtype=np.float32)
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: example})
    names = [o.name for o in session.get_outputs()]
    signature = infer_signature(example, dict(zip(names, outputs, strict=True)))
    mlflow.onnx.save_model(model, out_dir, signature=signature)
    print(json.dumps({"mlflow": mlflow.__version__}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
