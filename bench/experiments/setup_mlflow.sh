#!/bin/bash
# Creates the MLflow peer's own virtualenv (git-ignored, never the portal's .venv).
# Usage: bench/experiments/setup_mlflow.sh
set -e
cd "$(dirname "$0")/../.."
V=bench/.venvs/mlflow
if [ ! -x "$V/bin/mlflow" ]; then
  python3.11 -m venv "$V"
  "$V/bin/pip" install -q "mlflow==3.17.2" psycopg2-binary
fi
"$V/bin/python" -c "import mlflow; print('mlflow', mlflow.__version__)"
