"""MLflow 3's logged models, as far as the client's artifact paths need them: the portal keeps
models in its registry (registry.py), not as logged models, so a search finds none and the
client falls back to the run's own artifacts (`runs:/<run>/<path>` downloads)."""

from __future__ import annotations

from apps.mlflow_api.experiments import experiment_by_id
from apps.mlflow_api.protocol import Call, route


@route("POST", "logged-models/search", scope="read")
def logged_models_search(call: Call) -> dict:
    for experiment_id in call.list_param("experiment_ids"):
        experiment_by_id(Call(call.request, call.user, call.token, {"experiment_id": str(experiment_id)}))
    return {"models": []}
