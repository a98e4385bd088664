"""Reads a running MLflow tracking server (or anything that speaks its REST API) over http(s),
read-only, with `requests`: experiments/search, runs/search, metrics/get-history, artifacts/list,
the artifact proxy (`mlflow-artifacts:` URIs) or `get-artifact` for downloads,
registered-models/search and model-versions/search.

The token (MLFLOW_TRACKING_TOKEN, as the MLflow client) goes out as `Authorization: Bearer`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

import requests

from apps.mlflow_api.importer.source import (
    ItemError,
    SourceArtifact,
    SourceError,
    SourceExperiment,
    SourceModel,
    SourceRun,
    SourceVersion,
    pick_onnx,
)

PAGE = 1000  # MLflow's largest page for runs/search and experiments/search
HISTORY_PAGE = 25000
TIMEOUT_S = 60
CHUNK = 1024 * 1024


def _pairs(items) -> dict[str, str]:
    return {str(i.get("key")): str(i.get("value", "")) for i in items or [] if isinstance(i, dict) and i.get("key")}


def _as_float(value) -> float:
    return float(value)  # JSON numbers, and "NaN"/"Infinity" as MLflow's protobuf JSON writes them


class RestReader:
    """`MlflowReader` over a tracking server's REST API."""

    def __init__(self, uri: str, *, token: str | None = None, username: str | None = None, password: str | None = None):
        self.base = uri.rstrip("/")
        self.description = f"MLflow tracking server {self.base}"
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif username and password:
            self.session.auth = (username, password)
        self._run_artifact_uris: dict[str, str] = {}
        # Fail now, with one clear message, when the server cannot be reached or refuses us.
        self._call("GET", "experiments/search", params={"max_results": 1}, whole=True)

    # --- HTTP ----------------------------------------------------------------------------------
    def _call(self, method: str, path: str, *, params=None, json=None, whole: bool = False, what: str = "") -> dict:
        url = f"{self.base}/api/2.0/mlflow/{path}"
        try:
            response = self.session.request(method, url, params=params, json=json, timeout=TIMEOUT_S)
        except requests.RequestException as exc:
            raise SourceError(f"Cannot reach the MLflow tracking server at {self.base}: {exc}") from None
        return self._answer(response, url, whole=whole, what=what)

    def _answer(self, response: requests.Response, url: str, *, whole: bool, what: str) -> dict:
        if response.status_code in (401, 403) and whole:
            raise SourceError(
                f"{self.base} refused the request ({response.status_code}): set MLFLOW_TRACKING_TOKEN "
                "(or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) to a token that may read it."
            )
        if response.status_code >= 400:
            message = self._error_message(response)
            error = SourceError if whole else ItemError
            raise error(f"{what or url}: the server answered {response.status_code}{message}")
        try:
            body = response.json()
        except ValueError:
            error = SourceError if whole else ItemError
            raise error(
                f"{what or url}: the server's answer is not JSON; is {self.base} an MLflow tracking server?"
            ) from None
        if not isinstance(body, dict):
            raise (SourceError if whole else ItemError)(f"{what or url}: unexpected answer {str(body)[:80]!r}.")
        return body

    @staticmethod
    def _error_message(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return ""
        if isinstance(body, dict) and body.get("message"):
            return f" ({body.get('error_code', 'error')}: {str(body['message'])[:300]})"
        return ""

    def _pages(
        self, method: str, path: str, key: str, *, body: dict, whole: bool = True, what: str = ""
    ) -> Iterator[dict]:
        token = None
        while True:
            request = {**body, **({"page_token": token} if token else {})}
            if method == "GET":
                answer = self._call("GET", path, params=request, whole=whole, what=what)
            else:
                answer = self._call("POST", path, json=request, whole=whole, what=what)
            yield from answer.get(key) or []
            token = answer.get("next_page_token")
            if not token:
                return

    # --- experiments and runs --------------------------------------------------------------------
    def experiments(self) -> Iterator[SourceExperiment | ItemError]:
        body = {"max_results": PAGE, "view_type": "ACTIVE_ONLY"}
        for item in self._pages("POST", "experiments/search", "experiments", body=body):
            if not isinstance(item, dict) or not item.get("experiment_id") or not item.get("name"):
                yield ItemError(f"experiments/search returned an experiment without id or name: {str(item)[:80]}")
                continue
            yield SourceExperiment(
                experiment_id=str(item["experiment_id"]),
                name=str(item["name"]),
                lifecycle_stage=str(item.get("lifecycle_stage") or "active"),
                tags=_pairs(item.get("tags")),
            )

    def runs(self, experiment: SourceExperiment) -> Iterator[SourceRun | ItemError]:
        body = {"experiment_ids": [experiment.experiment_id], "max_results": PAGE, "run_view_type": "ACTIVE_ONLY"}
        what = f"runs of experiment {experiment.name!r}"
        try:
            for item in self._pages("POST", "runs/search", "runs", body=body, whole=False, what=what):
                info, data = (item.get("info") or {}), (item.get("data") or {})
                run_id = str(info.get("run_id") or info.get("run_uuid") or "")
                if not run_id:
                    yield ItemError(f"{what}: a run without run_id")
                    continue
                tags = _pairs(data.get("tags"))
                self._run_artifact_uris[run_id] = str(info.get("artifact_uri") or "")
                yield SourceRun(
                    run_id=run_id,
                    experiment_id=experiment.experiment_id,
                    name=str(info.get("run_name") or tags.get("mlflow.runName") or run_id[:8]),
                    status=str(info.get("status") or "FINISHED").upper(),
                    start_time=info.get("start_time") and int(info["start_time"]),
                    end_time=info.get("end_time") and int(info["end_time"]),
                    lifecycle_stage=str(info.get("lifecycle_stage") or "active"),
                    user_id=str(info.get("user_id") or ""),
                    artifact_uri=str(info.get("artifact_uri") or ""),
                    params=_pairs(data.get("params")),
                    tags=tags,
                    metric_keys=sorted({str(m["key"]) for m in data.get("metrics") or [] if m.get("key")}),
                )
        except ItemError as exc:
            yield exc

    def metric_history(self, run: SourceRun, key: str) -> list[dict]:
        body = {"run_id": run.run_id, "metric_key": key, "max_results": HISTORY_PAGE}
        what = f"metric {key!r} of run {run.run_id}"
        points = []
        for m in self._pages("GET", "metrics/get-history", "metrics", body=body, whole=False, what=what):
            try:
                points.append(
                    {"key": key, "value": _as_float(m.get("value")), "step": int(m.get("step") or 0),
                     "timestamp": int(m.get("timestamp") or 0)}
                )  # fmt: skip
            except (TypeError, ValueError):
                raise ItemError(f"{what}: a point that is not a number: {str(m)[:80]}") from None
        return points

    # --- artifacts -------------------------------------------------------------------------------
    def artifacts(self, run: SourceRun) -> list[SourceArtifact]:
        found, folders = [], [""]
        while folders:
            folder = folders.pop()
            params = {"run_id": run.run_id, **({"path": folder} if folder else {})}
            answer = self._call("GET", "artifacts/list", params=params, what=f"artifacts of run {run.run_id}")
            for item in answer.get("files") or []:
                if item.get("is_dir"):
                    folders.append(str(item["path"]))
                else:
                    found.append(SourceArtifact(path=str(item["path"]), size=int(item.get("file_size") or 0)))
        return sorted(found, key=lambda a: a.path)

    def _download_url(self, run: SourceRun, path: str) -> tuple[str, dict]:
        uri = run.artifact_uri or self._run_artifact_uris.get(run.run_id, "")
        if uri.startswith("mlflow-artifacts:"):
            root = urlsplit(uri).path.strip("/")
            return f"{self.base}/api/2.0/mlflow-artifacts/artifacts/{quote(f'{root}/{path}')}", {}
        return f"{self.base}/get-artifact", {"path": path, "run_uuid": run.run_id}

    @contextmanager
    def _download(self, url: str, params: dict, what: str) -> Iterator[BinaryIO]:
        try:
            with self.session.get(url, params=params, stream=True, timeout=TIMEOUT_S) as response:
                if response.status_code >= 400:
                    raise ItemError(
                        f"{what}: the server answered {response.status_code}{self._error_message(response)}"
                    )
                with tempfile.TemporaryFile() as spool:  # artifacts may be large: spool, never hold in memory
                    for chunk in response.iter_content(CHUNK):
                        spool.write(chunk)
                    spool.seek(0)
                    yield spool
        except requests.RequestException as exc:
            raise ItemError(f"{what}: {exc}") from None

    @contextmanager
    def open_artifact(self, run: SourceRun, path: str) -> Iterator[BinaryIO]:
        url, params = self._download_url(run, path)
        with self._download(url, params, f"artifact {path!r} of run {run.run_id}") as handle:
            yield handle

    # --- registry --------------------------------------------------------------------------------
    def models(self) -> Iterator[SourceModel | ItemError]:
        try:
            items = list(
                self._pages("GET", "registered-models/search", "registered_models", body={"max_results": 1000})
            )
        except SourceError as exc:
            if "ENDPOINT_NOT_FOUND" in str(exc) or " 404" in str(exc):
                return  # a server without a model registry
            raise
        for item in items:
            if not item.get("name"):
                yield ItemError(f"registered-models/search returned a model without a name: {str(item)[:80]}")
                continue
            aliases = {str(a["alias"]): str(a["version"]) for a in item.get("aliases") or [] if a.get("alias")}
            yield SourceModel(
                name=str(item["name"]), description=str(item.get("description") or ""),
                tags=_pairs(item.get("tags")), aliases=aliases,
            )  # fmt: skip

    def versions(self, model: SourceModel) -> Iterator[SourceVersion | ItemError]:
        escaped = model.name.replace("'", "\\'")
        body = {"filter": f"name='{escaped}'", "max_results": 1000}
        what = f"versions of model {model.name!r}"
        try:
            items = list(
                self._pages("GET", "model-versions/search", "model_versions", body=body, whole=False, what=what)
            )
        except ItemError as exc:
            yield exc
            return
        for item in sorted(items, key=lambda v: int(v.get("version") or 0)):
            yield SourceVersion(
                name=model.name, version=str(item.get("version")), source=str(item.get("source") or ""),
                run_id=str(item.get("run_id") or ""), description=str(item.get("description") or ""),
                status=str(item.get("status") or "READY"), tags=_pairs(item.get("tags")),
            )  # fmt: skip

    @contextmanager
    def version_onnx(self, version: SourceVersion) -> Iterator[Path]:
        where = f"model version {version.name} v{version.version} (source {version.source or 'none'})"
        url, params = self._version_file(version, where)
        with self._download(url, params, where) as handle, tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            with path.open("wb") as out:
                while chunk := handle.read(CHUNK):
                    out.write(chunk)
            yield path

    def _version_file(self, version: SourceVersion, where: str) -> tuple[str, dict]:
        """Where to download the version's ONNX file: the run's artifact for `runs:/` sources, else
        through the artifact proxy at the version's download URI."""
        if version.source.startswith("runs:/"):
            run_id, _, rest = version.source[len("runs:/") :].partition("/")
            run = SourceRun(run_id=run_id, experiment_id="", name="", status="", start_time=None, end_time=None)
            run.artifact_uri = self._run_artifact_uris.get(run_id, "")
            listed = self._call(
                "GET", "artifacts/list", params={"run_id": run_id, "path": rest}, what=where
            ).get("files")  # fmt: skip
            if listed:  # a folder (an MLflow model): pick its ONNX file
                rest = pick_onnx([str(f["path"]) for f in listed if not f.get("is_dir")], where)
            return self._download_url(run, rest)
        answer = self._call(
            "GET", "model-versions/get-download-uri", params={"name": version.name, "version": version.version},
            what=where,
        )  # fmt: skip
        uri = str(answer.get("artifact_uri") or "")
        if not uri.startswith("mlflow-artifacts:"):
            raise ItemError(f"{where}: its files are at {uri or 'an unknown place'}, which this reader cannot open.")
        root = urlsplit(uri).path.strip("/")
        if root.lower().endswith(".onnx"):
            return f"{self.base}/api/2.0/mlflow-artifacts/artifacts/{quote(root)}", {}
        try:
            listed = self.session.get(
                f"{self.base}/api/2.0/mlflow-artifacts/artifacts", params={"path": root}, timeout=TIMEOUT_S
            )
        except requests.RequestException as exc:
            raise ItemError(f"{where}: {exc}") from None
        files = self._answer(listed, root, whole=False, what=where).get("files") or []
        name = pick_onnx([str(f["path"]) for f in files if not f.get("is_dir")], where)
        return f"{self.base}/api/2.0/mlflow-artifacts/artifacts/{quote(f'{root}/{name}')}", {}

    def close(self) -> None:
        self.session.close()
