"""Rendering and reading the Kubernetes manifests in deploy/kubernetes for the deploy tests.

`rendered(target)` runs `kubectl kustomize` once per target (base or an overlay) and returns its
documents; the rest answers questions about them: the pods' specs and containers, a container's
environment as the kubelet assembles it (envFrom ConfigMaps, then env), the validators.
Nothing here talks to a cluster.
"""

from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml
from kombu.transport.redis import Channel

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = ROOT / "deploy" / "kubernetes"
SCHEMAS_DIR = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.32"
# Overlay -> the residency regions it runs workers for.
OVERLAYS = {"one-region": ("uae-north",), "two-regions": ("uae-north", "eu")}
TARGETS = ("base", *(f"overlays/{name}" for name in OVERLAYS))
SECRET_NAME = "portal-secrets"  # pragma: allowlist secret
POD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
KEDA_CRDS = {
    "ScaledObject": "keda.sh_scaledobjects.yaml",
    "TriggerAuthentication": "keda.sh_triggerauthentications.yaml",
}


def kubectl() -> str:
    """The kubectl binary; a missing one is a failure to fix, never a reason to skip."""
    path = shutil.which("kubectl") or ("/usr/bin/kubectl" if Path("/usr/bin/kubectl").is_file() else None)
    if path is None:
        raise AssertionError(
            "kubectl is not installed: the deploy tests render the kustomize overlays with it. Install kubectl "
            "v1.32 (it bundles kustomize v5.5), e.g. from https://dl.k8s.io/release/v1.32.4/bin/linux/amd64/kubectl "
            "into /usr/bin/kubectl."
        )
    return path


@functools.cache
def rendered(target: str) -> tuple[dict, ...]:
    """The documents `kubectl kustomize deploy/kubernetes/<target>` writes."""
    result = subprocess.run(  # noqa: S603  fixed argv, no shell
        [kubectl(), "kustomize", str(KUBERNETES_DIR / target)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {target} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs, kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs, kind: str, name: str) -> dict:
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def workloads(docs) -> list[dict]:
    return [doc for doc in docs if doc["kind"] in POD_KINDS]


def containers(spec: dict) -> list[dict]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def config_map(docs, name: str) -> dict:
    """A ConfigMap by the name a pod refers to (kustomize's hashed name)."""
    return named(docs, "ConfigMap", name)


def container_env(docs, container: dict) -> dict[str, str]:
    """The environment as the kubelet builds it: envFrom sources in order, then env entries."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, f"{container['name']}: envFrom only from ConfigMaps, got {source}"
        env.update(config_map(docs, source["configMapRef"]["name"]).get("data", {}))
    for entry in container.get("env", []):
        assert "value" in entry, f"{container['name']}: env {entry['name']} must be a plain value (secrets are files)"
        env[entry["name"]] = entry["value"]
    return env


def worker_queue(container: dict) -> str | None:
    """The queue a `celery -A portal worker -Q <queue>` container consumes, else None."""
    command = [*container.get("command", []), *container.get("args", [])]
    if command[:4] != ["celery", "-A", "portal", "worker"]:
        return None
    return command[command.index("-Q") + 1]


def workers_by_queue(docs) -> dict[str, dict]:
    """queue -> the worker Deployment consuming it (one each: asserted)."""
    found: dict[str, dict] = {}
    for doc in of_kind(docs, "Deployment"):
        for container in pod_spec(doc)["containers"]:
            queue = worker_queue(container)
            if queue is None:
                continue
            assert "," not in queue, f"{doc['metadata']['name']}: one queue per worker Deployment, got {queue}"
            assert queue not in found, f"queue {queue} is consumed by two Deployments"
            found[queue] = doc
    return found


def broker_lists(queue: str) -> set[str]:
    """The Redis lists kombu's Redis transport keeps for `queue`, one per priority step."""
    return {queue if step == 0 else f"{queue}{Channel.sep}{step}" for step in Channel.priority_steps}


def image_name_and_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    return (name, tag) if name and "/" not in tag else (image, "")


# --- validators -------------------------------------------------------------------------------------


def _refuse_unknown_fields(schema):
    """KEDA's CRD schema with unknown fields refused, as the API server's strict field validation
    (kubectl --validate=strict) does: every object schema that lists its properties, and neither
    preserves unknown fields nor types its additional properties, gets additionalProperties false."""
    if isinstance(schema, dict):
        schema = {key: _refuse_unknown_fields(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_refuse_unknown_fields(item) for item in schema]
    return schema


@functools.cache
def keda_schema(kind: str) -> dict:
    crd = yaml.safe_load((SCHEMAS_DIR / KEDA_CRDS[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = _refuse_unknown_fields(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    # The API server checks metadata itself; the CRD schema only says "object".
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def validation_errors(doc: dict) -> list[str]:
    """Why `doc` is not a valid object for Kubernetes 1.32 (KEDA's CRDs for KEDA kinds); [] when it is."""
    where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
    if doc.get("kind") in KEDA_CRDS:
        if doc.get("apiVersion") != "keda.sh/v1alpha1":
            return [f"{where}: apiVersion must be keda.sh/v1alpha1"]
        validator = jsonschema.Draft7Validator(keda_schema(doc["kind"]))
        return [f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{where}: {'/'.join(map(str, exc.path))}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"{where}: no Kubernetes {KUBERNETES_VERSION} schema: {exc}"]
    return []


# --- portal/settings/ -----------------------------------------------------------------------------

_SETTING_READ = re.compile(r"\b(?:env_\w+|_region_buckets|_oidc_map)\(\s*\"([A-Z][A-Z0-9_]*)\"")


@functools.cache
def settings_variables() -> frozenset[str]:
    """Every environment variable portal/settings/ reads (through portal.env's helpers)."""
    text = "\n".join(path.read_text() for path in sorted((ROOT / "portal" / "settings").glob("*.py")))
    return frozenset(_SETTING_READ.findall(text))
