"""The MLflow-compatible REST API (shared/API.md "MLflow-compatible API"): an adapter over the
experiments and catalog apps' services and selectors; nothing is stored of its own."""
