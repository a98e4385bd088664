"""MLflow's run calls: create, get, update, delete, search, log-metric, log-parameter, log-batch,
set-tag, delete-tag and metrics/get-history, each through the experiments app's selectors and
services (the same permissions, audit, live charts and run pages as the portal's own API).

Differences from MLflow's server, also in docs/MLFLOW.md: deleting a run is permanent (no
restore); params that change value are refused with INVALID_PARAMETER_VALUE, as MLflow does.
"""

from __future__ import annotations

import secrets
from contextlib import contextmanager
from datetime import datetime

from apps.core.errors import Conflict, NotFound
from apps.experiments import selectors, services
from apps.experiments.models import Run
from apps.experiments.validation import MAX_TIMESTAMP
from apps.mlflow_api.convert import STATUS_FROM_MLFLOW, float_out, from_ms, run_info_json, run_json
from apps.mlflow_api.experiments import DEFAULT_EXPERIMENT_HINT, experiment_by_id
from apps.mlflow_api.paging import max_results, offset_from, page_of
from apps.mlflow_api.protocol import Call, MlflowError, invalid, route, to_float, to_int
from apps.mlflow_api.search import SearchError, run_filter, run_ordering

RUN_NOT_FOUND = "No run matches the given query."  # selectors.run_for's words: one answer for missing and hidden
RUN_NAME_TAG = "mlflow.runName"
METRIC_FIELDS = frozenset({"key", "value", "timestamp", "step"})  # what run_log_batch reads of a point
GIT_COMMIT_TAG = "mlflow.source.git.commit"
NAME_WORDS = (
    ("amber", "brisk", "calm", "daring", "eager", "gentle", "honest", "lucid", "merry", "nimble", "quiet", "sunny"),
    ("otter", "falcon", "badger", "heron", "lynx", "marten", "osprey", "panda", "raven", "seal", "tapir", "wren"),
)


def _run_pk(call: Call) -> int:
    run_id = call.str_param("run_id") or call.str_param("run_uuid")
    if not run_id:
        raise invalid("Missing value for required parameter 'run_id'.")
    if not run_id.isdigit() or len(run_id) > 18:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id[:40]}' not found.")
    return int(run_id)


def run_by_id(call: Call, action: str = "view") -> Run:
    """The run named by `run_id` (or the older `run_uuid`); RESOURCE_DOES_NOT_EXIST when the caller
    may not see it."""
    return selectors.run_for(call.user, _run_pk(call), action)


@contextmanager
def run_hidden():
    """A stranger's write to a run answers exactly as a missing run does (the service's NotFound
    names the experiment, which would tell them the run exists)."""
    try:
        yield
    except NotFound:
        raise NotFound(RUN_NOT_FOUND) from None


def run_to_write(call: Call) -> Run:
    """The run named by `run_id` for a logging call: the service it goes to checks the caller's
    rights (RESOURCE_DOES_NOT_EXIST for a stranger, PERMISSION_DENIED for a viewer), so the
    restricted read of `run_by_id` would only ask the same question twice."""
    with run_hidden():
        return selectors.run_to_write(_run_pk(call))


def _pairs(call: Call, name: str) -> list[dict]:
    items = call.params.get(name)
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid(f"'{name}' is a list of {{key, value}} objects.")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "key" not in item:
            raise invalid(f"{name}[{i}] must be an object with key and value.")
        value = item.get("value", "")
        out.append({"key": item["key"], "value": value})
    return out


def _as_dict(items: list[dict]) -> dict:
    return {item["key"]: item["value"] for item in items}


def _random_name() -> str:
    return f"{secrets.choice(NAME_WORDS[0])}-{secrets.choice(NAME_WORDS[1])}-{secrets.randbelow(1000)}"


def _when(call: Call, name: str) -> datetime | None:
    """A client's time in ms since the epoch (MLflow's start_time / end_time); None: now."""
    value = call.int_param(name)
    if value is None or value <= 0:
        return None
    if value > MAX_TIMESTAMP:
        raise invalid(f"Invalid value {value} for parameter '{name}': milliseconds since the epoch.")
    return from_ms(value)


def _summaries(run: Run) -> dict:
    return selectors.summaries_of([run.pk])[run.pk]


@route("POST", "runs/create")
def run_create(call: Call) -> dict:
    if call.params.get("experiment_id") in (None, ""):
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", DEFAULT_EXPERIMENT_HINT)
    experiment = experiment_by_id(call)  # the service checks change rights
    tags = _as_dict(_pairs(call, "tags"))
    name = call.str_param("run_name") or tags.get(RUN_NAME_TAG) or _random_name()
    tags[RUN_NAME_TAG] = name
    run = services.run_create(
        experiment=experiment,
        actor=call.user,
        name=name,
        source=Run.Source.SCRIPT,
        tags=tags,
        code_version=str(tags.get(GIT_COMMIT_TAG, "")),
        started_at=_when(call, "start_time"),
    )
    return {"run": run_json(run, {})}


@route("GET", "runs/get")
def run_get(call: Call) -> dict:
    run = run_by_id(call)
    return {"run": run_json(run, _summaries(run))}


@route("POST", "runs/update")
def run_update(call: Call) -> dict:
    run = run_by_id(call)
    status = call.str_param("status")
    if status is not None and status.upper() not in STATUS_FROM_MLFLOW:
        raise invalid(f"Invalid value {status!r} for parameter 'status': use one of {', '.join(STATUS_FROM_MLFLOW)}.")
    name = call.str_param("run_name")
    run = services.run_update(
        run=run,
        actor=call.user,
        name=name,
        status=STATUS_FROM_MLFLOW[status.upper()] if status else None,
        ended_at=_when(call, "end_time"),
    )
    if name:
        services.run_log_batch(run=run, actor=call.user, tags={RUN_NAME_TAG: name})
    return {"run_info": run_info_json(run)}


@route("POST", "runs/delete")
def run_delete(call: Call) -> dict:
    services.run_delete(run=run_by_id(call), actor=call.user)
    return {}


def _metric(call: Call) -> dict:
    key = call.str_param("key", required=True)
    if "value" not in call.params:
        raise invalid("Missing value for required parameter 'value'.")
    value = call.params["value"]
    if not isinstance(value, str):
        value = to_float(value, "value")
    return {
        "key": key,
        "value": value,
        "timestamp": call.int_param("timestamp", required=True),
        "step": call.int_param("step", default=0),
    }


@route("POST", "runs/log-metric")
def run_log_metric(call: Call) -> dict:
    point = _metric(call)
    run = run_to_write(call)
    with run_hidden():
        services.run_log_batch(run=run, actor=call.user, metrics=[point])
    return {}


@route("POST", "runs/log-parameter")
def run_log_param(call: Call) -> dict:
    key = call.str_param("key", required=True)
    value = call.str_param("value", default="")
    run = run_to_write(call)
    try:
        with run_hidden():
            services.run_log_batch(run=run, actor=call.user, params={key: value})
    except Conflict as exc:
        raise invalid(str(exc)) from None
    return {}


@route("POST", "runs/set-tag")
def run_set_tag(call: Call) -> dict:
    key = call.str_param("key", required=True)
    value = call.str_param("value", default="")
    run = run_to_write(call)
    with run_hidden():
        services.run_log_batch(run=run, actor=call.user, tags={key: value})
    if key == RUN_NAME_TAG and value.strip():
        services.run_update(run=run, actor=call.user, name=value)
    return {}


@route("POST", "runs/delete-tag")
def run_delete_tag(call: Call) -> dict:
    key = call.str_param("key", required=True)
    services.run_tag_delete(run=run_by_id(call), actor=call.user, key=key)
    return {}


def _batch_metrics(call: Call) -> list[dict]:
    items = call.params.get("metrics")
    if items is None:
        return []
    if not isinstance(items, list):
        raise invalid("'metrics' is a list of {key, value, timestamp, step} objects.")
    if all(
        type(item) is dict
        and item.keys() <= METRIC_FIELDS
        and type(item.get("timestamp")) is int
        and type(item.get("step", 0)) is int
        for item in items
    ):
        return items  # the client's usual shape: the service validates it as it is, without a copy
    points = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise invalid(f"metrics[{i}] must be an object with key, value, timestamp and step.")
        value = item.get("value")
        if type(value) is not float and type(value) is not int and not isinstance(value, str):  # fast path first
            value = to_float(value, f"metrics[{i}].value")
        ts, step = item.get("timestamp"), item.get("step", 0)
        points.append({
            "key": item.get("key"),
            "value": value,
            "timestamp": ts if type(ts) is int else to_int(ts, f"metrics[{i}].timestamp"),
            "step": step if type(step) is int else to_int(step, f"metrics[{i}].step"),
        })  # fmt: skip
    return points


@route("POST", "runs/log-batch")
def run_log_batch(call: Call) -> dict:
    metrics, params, tags = _batch_metrics(call), _pairs(call, "params"), _pairs(call, "tags")
    total = len(metrics) + len(params) + len(tags)
    if total > 1000:
        raise invalid(f"A batch holds at most 1000 metrics, params and tags together; got {total}.")
    if not total:
        run_by_id(call)  # nothing to write: still answers as the run does for this caller
        return {}
    run = run_to_write(call)
    try:
        with run_hidden():
            services.run_log_batch(run=run, actor=call.user, metrics=metrics, params=params, tags=tags)
    except Conflict as exc:
        raise invalid(str(exc)) from None
    name = next((t["value"] for t in reversed(tags) if t["key"] == RUN_NAME_TAG), None)
    if isinstance(name, str) and name.strip():
        services.run_update(run=run, actor=call.user, name=name)
    return {}


@route("GET", "metrics/get-history")
def metric_history(call: Call) -> dict:
    run = run_by_id(call)
    key = call.str_param("metric_key", required=True)
    series = selectors.series_of(run, key)
    points = [
        {"key": key, "value": float_out(v), "timestamp": t, "step": s}
        for s, v, t in zip(series["steps"], series["values"], series["timestamps"], strict=True)
    ]
    if call.params.get("max_results") in (None, ""):
        return {"metrics": points}
    page, token = page_of(points, offset_from(call), max_results(call, default=25_000, limit=1_000_000))
    return {"metrics": page, **({"next_page_token": token} if token else {})}


def _search(call: Call) -> dict:
    experiment_ids = call.list_param("experiment_ids")
    if not all(isinstance(e, str | int) and not isinstance(e, bool) for e in experiment_ids):
        raise invalid("'experiment_ids' is a list of experiment ids.")
    ids = [int(e) for e in experiment_ids if str(e).isdigit() and len(str(e)) < 19]
    size = max_results(call, default=1000, limit=50_000)
    offset = offset_from(call)
    view = (call.str_param("run_view_type") or "ACTIVE_ONLY").upper()
    if view not in ("ACTIVE_ONLY", "DELETED_ONLY", "ALL"):
        raise invalid(f"Invalid run_view_type {view!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL.")
    if view == "DELETED_ONLY":  # deleting is permanent here
        return {"runs": []}
    try:
        where = run_filter(call.str_param("filter"))
        ordering = run_ordering(call.list_param("order_by"))
    except SearchError as exc:
        raise invalid(str(exc)) from None
    page_ids, token = page_of(selectors.runs_where(call.user, ids, where, ordering), offset, size)
    runs = selectors.runs_in_order(page_ids)
    summaries = selectors.summaries_of(page_ids)
    answer: dict = {"runs": [run_json(run, summaries[run.pk]) for run in runs]}
    if token:
        answer["next_page_token"] = token
    return answer


route("POST", "runs/search", scope="read")(_search)  # a search reads, whatever the method
route("GET", "runs/search")(_search)
