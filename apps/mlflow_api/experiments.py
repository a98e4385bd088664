"""MLflow's experiment calls: create, get, get-by-name, search (GET and POST), set-experiment-tag.
Experiments are the portal's own (same permissions: what the caller may not see does not exist)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.db.models import Q

from apps.core.names import slug_from
from apps.experiments import selectors, services
from apps.experiments.models import Experiment
from apps.mlflow_api.convert import experiment_json
from apps.mlflow_api.paging import max_results, offset_from, page_of
from apps.mlflow_api.protocol import Call, MlflowError, invalid, route
from apps.mlflow_api.search import SearchError, experiment_filter, experiment_ordering

DEFAULT_EXPERIMENT_HINT = (
    "The portal has no shared 'Default' experiment (id 0): name one with mlflow.set_experiment('my-experiment') "
    "or MLFLOW_EXPERIMENT_NAME."
)
NAME_HINT = "Experiment names in the portal are lowercase letters, digits and single hyphens, e.g. churn-model."
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def portal_name(name: str) -> str:
    """The portal's name for an MLflow experiment name: itself when it is already one, else its
    slug ('Churn Model' -> 'churn-model', as import_mlflow names them), so that an unchanged
    `mlflow.set_experiment("Churn Model")` finds (get-by-name) what it created (create)."""
    return name if SLUG_RE.match(name) else slug_from(name, fallback="experiment", max_length=100)


def experiment_by_id(call: Call, name: str = "experiment_id", action: str = "view") -> Experiment:
    experiment_id = call.str_param(name, required=True)
    if experiment_id == "0":
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", DEFAULT_EXPERIMENT_HINT)
    if not experiment_id.isdigit() or len(experiment_id) > 18:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No experiment with id {experiment_id[:40]!r}.")
    return selectors.experiment_for(call.user, int(experiment_id), action)


def _tags_dict(items, field: str = "tags") -> dict:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise invalid(f"'{field}' is a list of {{key, value}} objects.")
    tags = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise invalid(f"{field}[{i}] must be an object with a string key and a value.")
        tags[item["key"]] = item.get("value", "")
    return tags


@route("POST", "experiments/create")
def experiment_create(call: Call) -> dict:
    name = portal_name(call.str_param("name", required=True))
    try:
        experiment = services.experiment_create(actor=call.user, name=name, tags=_tags_dict(call.params.get("tags")))
    except ValidationError as exc:
        messages = getattr(exc, "message_dict", {}).get("name", [])
        if any("already exists" in m for m in messages):
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{name}' already exists.") from None
        if messages:
            raise invalid(f"Invalid experiment name {name[:100]!r}: {' '.join(messages)} {NAME_HINT}") from None
        raise
    return {"experiment_id": str(experiment.pk)}


@route("GET", "experiments/get")
def experiment_get(call: Call) -> dict:
    return {"experiment": experiment_json(experiment_by_id(call))}


@route("GET", "experiments/get-by-name")
def experiment_get_by_name(call: Call) -> dict:
    name = call.str_param("experiment_name", required=True)
    experiment = selectors.experiments_where(call.user, Q(name=portal_name(name)), ["pk"]).first()
    if experiment is None:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'.")
    return {"experiment": experiment_json(experiment)}


def _search(call: Call) -> dict:
    size = max_results(call, default=1000, limit=50_000)
    offset = offset_from(call)
    view_type = (call.str_param("view_type") or "ACTIVE_ONLY").upper()
    if view_type not in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        raise invalid(f"Invalid view_type {view_type!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    if view_type == "DELETED_ONLY":  # deleting is permanent here: nothing is ever in the deleted stage
        return {"experiments": []}
    try:
        where = experiment_filter(call.str_param("filter"))
        ordering = experiment_ordering(call.list_param("order_by"))
    except SearchError as exc:
        raise invalid(str(exc)) from None
    experiments, token = page_of(selectors.experiments_where(call.user, where, ordering), offset, size)
    answer: dict = {"experiments": [experiment_json(e) for e in experiments]}
    if token:
        answer["next_page_token"] = token
    return answer


route("GET", "experiments/search")(_search)
route("POST", "experiments/search", scope="read")(_search)  # a search reads, whatever the method


@route("POST", "experiments/set-experiment-tag")
def experiment_set_tag(call: Call) -> dict:
    experiment = experiment_by_id(call)  # the service checks change rights
    key = call.str_param("key", required=True)
    value = call.str_param("value", default="")
    services.experiment_update(experiment=experiment, actor=call.user, tags={**experiment.tags, key: value})
    return {}
