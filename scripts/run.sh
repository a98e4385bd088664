#!/usr/bin/env bash
# Set up everything and start the portal with demo data on http://127.0.0.1:8000 (Ctrl-C stops it).
# Extra arguments go to `manage.py up`, e.g. ./scripts/run.sh --port 8080
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
setup_venv
exec .venv/bin/python manage.py up --demo "$@"
