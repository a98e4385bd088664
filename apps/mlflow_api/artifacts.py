"""Run artifacts the MLflow way: `artifacts/list` under /api/2.0/mlflow/ and the artifact proxy that
runs' `mlflow-artifacts:/<experiment>/<run>/artifacts` URIs point the client to:

    PUT /api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/<path>   upload
    GET /api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/<path>   download
    GET /api/2.0/mlflow-artifacts/artifacts?path=<experiment>/<run>/artifacts/<dir>  list

Files go through apps.experiments.services (encrypted into the vault, integrity-checked, audited,
streamed both ways); a path outside a visible run's artifacts is RESOURCE_DOES_NOT_EXIST.
"""

from __future__ import annotations

from django.http import HttpResponse

from apps.core import vault
from apps.experiments import selectors, services
from apps.experiments.models import Run
from apps.mlflow_api.convert import run_artifact_uri
from apps.mlflow_api.protocol import ARTIFACTS, Call, MlflowError, invalid, route
from apps.mlflow_api.runs import run_by_id


def _not_found(path: str) -> MlflowError:
    return MlflowError("RESOURCE_DOES_NOT_EXIST", f"No artifact at {path[:300]!r}.")


def _proxy_target(call: Call, path: str, action: str = "view") -> tuple[Run, str]:
    """(run, path inside its artifacts) for `<experiment>/<run>/artifacts[/<path>]`."""
    parts = path.strip("/").split("/", 3)
    if len(parts) < 3 or parts[2] != "artifacts" or not (parts[0].isdigit() and parts[1].isdigit()):
        raise _not_found(path)
    if len(parts[0]) > 18 or len(parts[1]) > 18:
        raise _not_found(path)
    run = selectors.run_for(call.user, int(parts[1]), action)
    if run.experiment_id != int(parts[0]):
        raise _not_found(path)
    return run, parts[3] if len(parts) == 4 else ""


def _listing(run: Run, directory: str) -> list[dict]:
    """The files and folders directly inside `directory` ("" for the root), names relative to it."""
    if any(part in (".", "..") for part in directory.split("/")):
        raise invalid("Give an artifact folder without '.' or '..' parts.")
    prefix = f"{directory.strip('/')}/" if directory.strip("/") else ""
    files, folders = [], set()
    for path, size in selectors.artifacts_of(run).values_list("path", "size"):
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        head, slash, _ = rest.partition("/")
        if slash:
            folders.add(head)
        else:
            files.append({"path": rest, "is_dir": False, "file_size": size})
    return sorted([*files, *({"path": f, "is_dir": True} for f in folders)], key=lambda f: f["path"])


def _proxy_list(call: Call) -> dict:
    path = call.str_param("path") or ""
    run, inside = _proxy_target(call, path)
    return {"files": _listing(run, inside)}


def _download(call: Call, run: Run, inside: str) -> HttpResponse:
    if not inside:
        raise invalid("Give the artifact's path after /artifacts/.")
    artifact = selectors.artifact_of(run, inside)
    chunks, size, filename = services.run_artifact_open(artifact=artifact, actor=call.user, request=call.request)
    response = vault.streaming_response(chunks, request=call.request, size=size, filename=filename)
    response["X-Content-SHA256"] = artifact.blob.sha256
    return response


@route("GET", "artifacts", api=ARTIFACTS, prefix=True)
def proxy_get(call: Call):
    if not call.subpath:
        return _proxy_list(call)
    run, inside = _proxy_target(call, call.subpath)
    return _download(call, run, inside)


@route("PUT", "artifacts", api=ARTIFACTS, prefix=True, scope="write")
def proxy_put(call: Call) -> dict:
    run, inside = _proxy_target(call, call.subpath)  # the service checks change rights
    if not inside:
        raise invalid("Give the artifact's path after /artifacts/.")
    try:
        size = int(call.request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise invalid("Content-Length is not a number.") from None
    services.run_artifact_upload(run=run, actor=call.user, src=call.request, size=max(size, 0), path=inside)
    return {}


@route("GET", "artifacts/list")
def artifacts_list(call: Call) -> dict:
    run = run_by_id(call)
    path = (call.str_param("path") or "").strip("/")
    files = [{**f, "path": f"{path}/{f['path']}" if path else f["path"]} for f in _listing(run, path)]
    return {"root_uri": run_artifact_uri(run.experiment_id, run.pk), "files": files}
