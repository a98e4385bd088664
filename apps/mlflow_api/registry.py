"""The MLflow model-registry subset (shared/API.md "MLflow-compatible API", docs/MLFLOW.md): registered
models, model versions made from a run's ONNX artifact, and aliases, over the catalog's selectors
and services, so that the permissions, audit and immutability are the portal's own.

A protected alias answers PERMISSION_DENIED (403) naming POST /api/v1/promotions/; a stranger gets
RESOURCE_DOES_NOT_EXIST as everywhere. JSON shapes, sources and filters are in registry_shapes.py.
"""

from __future__ import annotations

import tempfile

from django.core.exceptions import ValidationError

from apps.catalog import selectors as catalog
from apps.catalog import services as catalog_services
from apps.experiments import selectors as experiments
from apps.experiments.services.artifacts import run_artifact_open
from apps.mlflow_api import registry_shapes as shapes
from apps.mlflow_api.convert import run_artifact_uri
from apps.mlflow_api.protocol import Call, MlflowError, invalid, route

MAX_VERSION = 2**31 - 1
# Searches: MLflow's own limits (its server refuses more than these max_results), and the most
# rows one answer of ours holds; the client follows next_page_token for the rest.
MODELS_MAX_RESULTS, VERSIONS_MAX_RESULTS, PAGE_LIMIT = 1000, 200_000, 1000
# A decrypted run artifact stays in memory up to this size on its way into the catalog.
SPOOL_BYTES = 8 << 20
MODEL_COLUMNS = {
    "name": "name",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "updated_at",
    "timestamp": "updated_at",
}
VERSION_COLUMNS = {
    "name": "model__name",
    "version_number": "version",
    "creation_timestamp": "created_at",
    "last_updated_timestamp": "created_at",
    "timestamp": "created_at",
}
VERSION_FILTERS = {"name": "model__name", "run_id": "run_id", "source_path": "source"}


# --- registered models ----------------------------------------------------------------------------


@route("POST", "registered-models/create")
def registered_model_create(call: Call) -> dict:
    name = call.str_param("name", required=True)
    tags = shapes.tags_from_mlflow(call.params.get("tags"))
    try:
        model = catalog_services.model_create(
            actor=call.user, name=name, description=call.str_param("description", default="") or "", tags=tags
        )
    except ValidationError as exc:
        taken = getattr(exc, "error_dict", {}).get("name", [])
        if any(error.code == "exists" for error in taken):
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists.") from None
        raise
    return {"registered_model": _model_json(call, model)}


@route("GET", "registered-models/get")
def registered_model_get(call: Call) -> dict:
    model = _model_for(call)
    return {"registered_model": _model_json(call, model)}


@route("GET", "registered-models/search")
def registered_models_search(call: Call) -> dict:
    offset, size = shapes.page_window(
        call.str_param("page_token"),
        call.int_param("max_results", default=100),
        page_limit=PAGE_LIMIT,
        threshold=MODELS_MAX_RESULTS,
    )
    q = shapes.filter_q(call.str_param("filter"), {"name": "name"})
    order = shapes.order_terms(call.list_param("order_by"), MODEL_COLUMNS, ["name"])
    models = catalog.models_visible(call.user, {}).filter(q).order_by(*order, "pk")
    page, next_token = shapes.page_of(models, offset, size)
    catalog.with_aliases(page)
    latest = catalog.latest_versions_of(page)
    answer = {
        "registered_models": [
            shapes.registered_model_json(
                m, call.request, latest=latest.get(m.pk), aliases=[(a.name, a.version) for a in m.alias_list]
            )
            for m in page
        ]
    }
    if next_token:
        answer["next_page_token"] = next_token
    return answer


def _model_for(call: Call, action: str = "view"):
    return catalog.model_for(call.user, call.str_param("name", required=True), action)


def _model_json(call: Call, model) -> dict:
    latest = catalog.versions_of(model).first()
    aliases = [(a.name, a.version.version) for a in catalog.aliases_of(model)]
    return shapes.registered_model_json(model, call.request, latest=latest, aliases=aliases)


# --- model versions ---------------------------------------------------------------------------------


@route("POST", "model-versions/create")
def model_version_create(call: Call) -> dict:
    """A new version of `name` from the ONNX file a run logged here (`source`); lineage to the run."""
    model = _model_for(call, "change")
    source = shapes.parse_source(call.str_param("source", required=True))
    description = call.str_param("description", default="") or ""
    tags = shapes.tags_from_mlflow(call.params.get("tags"))
    run = experiments.run_for(call.user, source.run_id)
    if source.experiment_id is not None and source.experiment_id != str(run.experiment_id):
        raise shapes.not_found(f"Run {source.run_id} is not in experiment {source.experiment_id}.")
    run_id = call.str_param("run_id")
    if run_id and run_id != str(run.pk):
        raise invalid(f"run_id {run_id[:64]!r} is not the run of the source (run {run.pk}).")
    artifact = shapes.onnx_artifact_in(experiments.artifacts_of(run), source.path)
    artifact.run = run
    chunks, size, _ = run_artifact_open(artifact=artifact, actor=call.user, request=call.request)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as buffer:
        version = catalog_services.version_register(
            model=model,
            actor=call.user,
            artifact=_LazySpool(chunks, buffer),
            artifact_size=size,
            description=description,
            tags=tags,
            lineage={"run_id": str(run.pk)},
            source=_canonical_source(run, source.path),
        )
    version = catalog.version_for(call.user, model.name, version.version)
    return {"model_version": shapes.model_version_json(version, call.request)}


@route("GET", "model-versions/get")
def model_version_get(call: Call) -> dict:
    return {"model_version": shapes.model_version_json(_version_for(call), call.request)}


@route("GET", "model-versions/get-download-uri")
def model_version_download_uri(call: Call) -> dict:
    return {"artifact_uri": shapes.download_uri(_version_for(call), call.request)}


@route("GET", "model-versions/search")
def model_versions_search(call: Call) -> dict:
    offset, size = shapes.page_window(
        call.str_param("page_token"),
        call.int_param("max_results", default=10_000),
        page_limit=PAGE_LIMIT,
        threshold=VERSIONS_MAX_RESULTS,
    )
    q = shapes.filter_q(call.str_param("filter"), VERSION_FILTERS, in_fields=("run_id",))
    order = shapes.order_terms(call.list_param("order_by"), VERSION_COLUMNS, ["-created_at", "model__name", "-version"])
    versions = catalog.versions_visible(call.user, {"q": q, "order": order})
    page, next_token = shapes.page_of(versions, offset, size)
    answer: dict = {"model_versions": [shapes.model_version_json(v, call.request) for v in page]}
    if next_token:
        answer["next_page_token"] = next_token
    return answer


def _version_number(call: Call, name: str = "version") -> int:
    text = call.str_param(name, required=True)
    if not text.isdigit() or len(text) > 10 or not 1 <= int(text) <= MAX_VERSION:
        raise invalid(f"Invalid value {text[:40]!r} for parameter '{name}': give a version number such as '1'.")
    return int(text)


def _version_for(call: Call):
    number = _version_number(call)
    return catalog.version_for(call.user, call.str_param("name", required=True), number)


def _canonical_source(run, path: str) -> str:
    """The run artifact as the artifact proxy names it, whichever URI form the client sent."""
    root = run_artifact_uri(run.experiment_id, run.pk)
    return f"{root}/{path}" if path else root


class _LazySpool:
    """The decrypted artifact as a seekable file (`buffer`), decrypted on first read: the catalog
    refuses an oversized file by its declared size before reading a byte of it."""

    def __init__(self, chunks, buffer) -> None:
        self._chunks, self._buffer, self._filled = chunks, buffer, False

    def _spooled(self):
        if not self._filled:
            for chunk in self._chunks:
                self._buffer.write(chunk)
            self._buffer.seek(0)
            self._filled = True
        return self._buffer

    def read(self, size: int = -1) -> bytes:
        return self._spooled().read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._spooled().seek(offset, whence)

    def tell(self) -> int:
        return self._spooled().tell()


# --- aliases ----------------------------------------------------------------------------------------


@route("POST", "registered-models/alias")
def alias_set(call: Call) -> dict:
    model = _model_for(call, "change")
    alias = call.str_param("alias", required=True)
    version = catalog.version_for(call.user, model.name, _version_number(call))
    _refuse_protected(model, alias)
    catalog_services.alias_move(model=model, alias=alias, version=version, actor=call.user)
    return {}


@route("DELETE", "registered-models/alias")
def alias_delete(call: Call) -> dict:
    model = _model_for(call, "change")
    found = catalog.alias_for(call.user, model.name, call.str_param("alias", required=True))
    _refuse_protected(model, found.name)
    catalog_services.alias_delete(model=model, alias=found.name, actor=call.user)
    return {}


@route("GET", "registered-models/alias")
def alias_resolve(call: Call) -> dict:
    found = catalog.alias_for(call.user, call.str_param("name", required=True), call.str_param("alias", required=True))
    version = catalog.version_for(call.user, found.model.name, found.version.version)
    return {"model_version": shapes.model_version_json(version, call.request)}


def _refuse_protected(model, alias: str) -> None:
    """MLflow's answer for an alias that moves only through an approved promotion (the caller may
    change the model; `alias_move` / `alias_delete` would refuse it with the portal's 409)."""
    if catalog_services.alias_needs_promotion(model, alias):
        raise MlflowError(
            "PERMISSION_DENIED",
            f"Alias {alias!r} of model {model.name!r} is protected. {catalog_services.promotion_hint(model, alias)}.",
        )
