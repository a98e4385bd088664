# Shared setup steps, sourced by run.sh and test.sh.

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

setup_venv() {
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
  fi
  local stamp=.venv/.requirements.sha256
  local want
  want=$(sha256sum requirements.txt | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing pinned requirements (first run takes a few minutes) ..."
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet --progress-bar on -r requirements.txt
    echo "$want" > "$stamp"
  fi
}

# The real MLflow client for the MLflow-compatible API's tests (issue 19) and the portal's script
# jobs' examples: mlflow-skinny in its own virtualenv, so the portal's requirements stay clean.
MLFLOW_CLIENT_PIN="mlflow-skinny==3.17.2"
setup_mlflow_client() {
  if [ ! -f .venv-mlflow/.pin ] || [ "$(cat .venv-mlflow/.pin)" != "$MLFLOW_CLIENT_PIN" ]; then
    echo "[setup] installing the MLflow client ($MLFLOW_CLIENT_PIN) into .venv-mlflow ..."
    rm -rf .venv-mlflow
    "$PYTHON" -m venv .venv-mlflow
    .venv-mlflow/bin/python -m pip install --quiet --disable-pip-version-check "$MLFLOW_CLIENT_PIN" onnx==$(.venv/bin/python -c "import onnx; print(onnx.__version__)") numpy
    echo "$MLFLOW_CLIENT_PIN" > .venv-mlflow/.pin
  fi
}

setup_browser() {
  # Browser tests drive Debian's chromium through Playwright (never `playwright install`).
  if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "[setup] installing Debian's chromium for browser tests ..."
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "[setup] /usr/bin/chromium is missing: install Debian's chromium package (browser tests need it)." >&2
    fi
  fi
}

setup_kubectl() {
  # The deployment tests render the kustomize overlays with kubectl (it bundles kustomize).
  if ! command -v kubectl >/dev/null; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
      echo "[setup] installing kubectl for the deployment tests ..."
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubectl >/dev/null
    else
      echo "[setup] kubectl is missing: install it (the tests in tests/deploy/ render the Kubernetes overlays with it)." >&2
    fi
  fi
}
