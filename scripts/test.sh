#!/usr/bin/env bash
# Set up (virtualenv, pinned install, browser for UI tests) and run the test suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh tests/core -x
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_venv
setup_browser
setup_mlflow_client
setup_kubectl
exec .venv/bin/python -m pytest "$@"
