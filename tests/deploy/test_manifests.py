"""The Kubernetes manifests (deploy/kubernetes): every target renders with kustomize, every document is
valid for Kubernetes 1.32 (KEDA's own CRD schemas for its kinds), and the deployment's rules hold:
resources and a non-root, read-only container everywhere, web probed on /healthz, a worker and a
queue-depth scaler for every queue of every region, GPU requests, one beat, secrets only as files.
"""

from __future__ import annotations

import copy
import posixpath
import re

import pytest

from apps.core.queues import BASE_QUEUES, RESOURCE_CLASSES, queue_name
from tests.deploy.manifests import (
    OVERLAYS,
    ROOT,
    SECRET_NAME,
    TARGETS,
    broker_lists,
    config_map,
    container_env,
    containers,
    image_name_and_tag,
    named,
    of_kind,
    pod_spec,
    rendered,
    settings_variables,
    validation_errors,
    worker_queue,
    workers_by_queue,
    workloads,
)

overlays = pytest.mark.parametrize("overlay", [f"overlays/{name}" for name in OVERLAYS])


def _regions(overlay: str) -> tuple[str, ...]:
    return OVERLAYS[overlay.removeprefix("overlays/")]


@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_document_is_valid_for_kubernetes(target):
    docs = rendered(target)
    assert docs, f"{target} rendered nothing"
    errors = [error for doc in docs for error in validation_errors(doc)]
    assert not errors, "\n".join(errors)
    assert all(doc["metadata"].get("namespace") == "portal" for doc in docs if doc["kind"] != "Namespace")


def test_validators_refuse_unknown_fields_and_wrong_types():
    """The strict validators are what makes the test above mean something: a typo'd field fails."""
    docs = rendered("overlays/one-region")
    web = copy.deepcopy(named(docs, "Deployment", "portal-web"))
    web["spec"]["template"]["spec"]["containers"][0]["readinessProbe"][
        "httpGett"
    ] = {}  # a typo beside the real httpGet
    assert validation_errors(web)
    scaled = copy.deepcopy(named(docs, "ScaledObject", "portal-worker-cpu"))
    scaled["spec"]["minReplicas"] = 1  # KEDA's field is minReplicaCount
    assert validation_errors(scaled)
    scaled = copy.deepcopy(named(docs, "ScaledObject", "portal-worker-cpu"))
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 5  # trigger metadata values are strings
    assert validation_errors(scaled)


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_non_root_read_only_and_has_resources(target):
    for doc in workloads(rendered(target)):
        spec = pod_spec(doc)
        name = doc["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        mounts_by_container = {}
        for container in containers(spec):
            where = f"{name}/{container['name']}"
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), f"{where}: {bound}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, where
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"]["drop"] == ["ALL"], where
            mounts_by_container[container["name"]] = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        env = container_env(rendered(target), spec["containers"][0])
        for container_name, mounts in mounts_by_container.items():
            # A read-only root needs writable scratch: /tmp and the portal's var directory.
            for path in ("/tmp", env["PORTAL_VAR_DIR"]):
                assert "emptyDir" in volumes[mounts[path]], f"{name}/{container_name}: {path} is not an emptyDir"


@overlays
def test_web_is_probed_on_healthz_with_a_disruption_budget_and_an_autoscaler(overlay):
    docs = rendered(overlay)
    web = named(docs, "Deployment", "portal-web")
    (container,) = pod_spec(web)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    allowed_hosts = container_env(docs, container)["ALLOWED_HOSTS"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert ports[get["port"]] == 8000, probe
        hosts = [h["value"] for h in get.get("httpHeaders", []) if h["name"] == "Host"]
        assert hosts and hosts[0] in allowed_hosts, f"{probe}: a Host header in ALLOWED_HOSTS, or Django answers 400"
    labels = web["spec"]["template"]["metadata"]["labels"]
    budget = named(docs, "PodDisruptionBudget", "portal-web")
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = named(docs, "Service", "portal-web")
    assert service["spec"]["selector"].items() <= labels.items()
    autoscaler = named(docs, "HorizontalPodAutoscaler", "portal-web")
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "portal-web"}
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in autoscaler["spec"]["metrics"]] == ["cpu"]
    # The autoscaler owns the count: a replicas field would reset it at every apply.
    assert "replicas" not in web["spec"]
    grace = pod_spec(web)["terminationGracePeriodSeconds"]
    command = container["command"]
    drain = int(command[command.index("--timeout-graceful-shutdown") + 1])
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pre_stop + drain < grace, "preStop and uvicorn's graceful shutdown must fit the grace period"


@overlays
def test_every_queue_of_every_region_has_a_worker_and_a_queue_depth_scaler(overlay):
    docs = rendered(overlay)
    regions = _regions(overlay)
    expected = set(BASE_QUEUES) | {queue_name(kind, region) for kind in RESOURCE_CLASSES for region in regions}
    workers = workers_by_queue(docs)
    assert set(workers) == expected
    redis = named(docs, "Service", "redis")
    redis_address = f"redis.portal.svc.cluster.local:{redis['spec']['ports'][0]['port']}"
    scalers = {s["spec"]["scaleTargetRef"]["name"]: s for s in of_kind(docs, "ScaledObject")}
    authentications = {a["metadata"]["name"]: a for a in of_kind(docs, "TriggerAuthentication")}
    for queue, worker in workers.items():
        name = worker["metadata"]["name"]
        (container,) = pod_spec(worker)["containers"]
        region = queue.partition(".")[2]
        env = container_env(docs, container)
        if region:
            assert env["PORTAL_REGION"] == region, f"{name} must run as region {region}"
            terms = pod_spec(worker)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            expressions = terms["nodeSelectorTerms"][0]["matchExpressions"]
            assert {"key": "topology.kubernetes.io/region", "operator": "In", "values": [region]} in expressions
        assert "replicas" not in worker["spec"], f"{name}: KEDA owns the replica count"
        scaler = scalers.pop(name, None)
        assert scaler is not None, f"no ScaledObject scales {name}"
        spec = scaler["spec"]
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name  # the CRD's CEL rule
        triggers = spec["triggers"]
        assert {t["type"] for t in triggers} == {"redis"}, name
        assert {t["metadata"]["listName"] for t in triggers} == broker_lists(queue), name
        for trigger in triggers:
            assert trigger["metadata"]["address"] == redis_address, name
            assert int(trigger["metadata"]["listLength"]) >= 1, name
            authentication = authentications[trigger["authenticationRef"]["name"]]
            (secret_ref,) = authentication["spec"]["secretTargetRef"]
            assert (secret_ref["parameter"], secret_ref["name"]) == ("password", SECRET_NAME)
        # Celery's warm shutdown lets a running task finish; training needs more than the default 30 s.
        if queue.partition(".")[0] in RESOURCE_CLASSES:
            assert pod_spec(worker)["terminationGracePeriodSeconds"] >= 1800, name
    assert not scalers, f"ScaledObjects without a worker: {sorted(scalers)}"


@overlays
def test_gpu_workers_request_a_gpu_and_run_the_cuda_image(overlay):
    for queue, worker in workers_by_queue(rendered(overlay)).items():
        spec = pod_spec(worker)
        (container,) = spec["containers"]
        gpu = queue.partition(".")[0] == "gpu"
        for bound in ("requests", "limits"):
            assert (container["resources"][bound].get("nvidia.com/gpu") == 1) is gpu, f"{queue}: {bound}"
        if gpu:
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
            assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            # The CPU wheel has no CUDA: apps/core/workers.py refuses to start a gpu queue without it.
            assert image_name_and_tag(container["image"])[0] == "portal-cuda", queue
        else:
            assert "tolerations" not in spec and "nodeSelector" not in spec, queue
            assert image_name_and_tag(container["image"])[0] == "portal", queue


@pytest.mark.parametrize("target", TARGETS)
def test_beat_is_a_single_replica_that_is_never_scaled(target):
    docs = rendered(target)
    beats = [d for d in of_kind(docs, "Deployment") if pod_spec(d)["containers"][0]["command"][3:4] == ["beat"]]
    assert len(beats) == 1
    (beat,) = beats
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in [*of_kind(docs, "HorizontalPodAutoscaler"),
                                                          *of_kind(docs, "ScaledObject")]}  # fmt: skip
    assert beat["metadata"]["name"] not in scaled


@pytest.mark.parametrize("target", TARGETS)
def test_migration_job_checks_the_deployment_then_migrates(target):
    job = named(rendered(target), "Job", "portal-migrate")
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    commands = [c["command"] for c in containers(spec)]
    assert commands == [
        ["python", "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        ["python", "manage.py", "migrate", "--noinput"],
    ]


@pytest.mark.parametrize("target", TARGETS)
def test_the_prepare_phase_holds_what_the_migration_job_needs_and_no_deployment(target):
    """Upgrades apply `-l portal/rollout=prepare` first, wait for the Job, then apply the rest
    (docs/DEPLOYMENT.md): that first apply must carry the Job and everything it uses, and must not
    roll any Deployment before the schema is migrated."""
    docs = rendered(target)
    prepared = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("labels", {}).get("portal/rollout") == "prepare"
    }
    job = named(docs, "Job", "portal-migrate")
    spec = pod_spec(job)
    needed = {("Job", "portal-migrate"), ("ServiceAccount", spec["serviceAccountName"]), ("Namespace", "portal")}
    needed |= {("ConfigMap", s["configMapRef"]["name"]) for c in containers(spec) for s in c["envFrom"]}
    needed |= {("PersistentVolumeClaim", v["persistentVolumeClaim"]["claimName"]) for v in spec["volumes"]
               if "persistentVolumeClaim" in v}  # fmt: skip
    needed |= {("Service", name) for name in ("postgres", "redis")}
    needed |= {("NetworkPolicy", p["metadata"]["name"]) for p in of_kind(docs, "NetworkPolicy")}
    assert needed <= prepared, f"missing from the prepare phase: {sorted(needed - prepared)}"
    assert not {kind for kind, _ in prepared} & {"Deployment", "ScaledObject", "HorizontalPodAutoscaler"}


# The settings whose values are secrets: each comes from the Secret as a NAME_FILE file, never a value.
SECRET_SETTINGS = {
    "SECRET_KEY", "VAULT_KEYRING", "DATABASE_URL", "REDIS_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY",
    "EMAIL_HOST_PASSWORD", "OIDC_RP_CLIENT_SECRET",
}  # fmt: skip
_CREDENTIAL_IN_URL = re.compile(r"\w+://[^/\s:@]*:[^/\s@]+@")
_KEY_RING = re.compile(r"(^|,)\s*[\w-]+:[A-Za-z0-9+/]{43}=")


@pytest.mark.parametrize("target", TARGETS)
def test_no_secret_is_in_a_config_map_or_rendered_at_all(target):
    docs = rendered(target)
    # Secrets are created apart (docs/DEPLOYMENT.md): `kubectl apply -k` must never overwrite them.
    assert not of_kind(docs, "Secret")
    for config in of_kind(docs, "ConfigMap"):
        for key, value in config.get("data", {}).items():
            where = f"ConfigMap {config['metadata']['name']}: {key}"
            assert key not in SECRET_SETTINGS, f"{where} is a secret: give {key}_FILE instead"
            assert not _CREDENTIAL_IN_URL.search(value), f"{where} holds a URL with a password"
            assert not _KEY_RING.search(value), f"{where} looks like a key ring"
            assert "PRIVATE KEY" not in value, where


@pytest.mark.parametrize("target", TARGETS)
def test_every_file_setting_names_a_mounted_secret_file(target):
    docs = rendered(target)
    for doc in workloads(docs):
        spec = pod_spec(doc)
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in containers(spec):
            where = f"{doc['metadata']['name']}/{container['name']}"
            env = container_env(docs, container)
            assert not SECRET_SETTINGS & set(env), f"{where}: secrets come as NAME_FILE files"
            files = {name: path for name, path in env.items() if name.endswith("_FILE")}
            assert {"SECRET_KEY_FILE", "VAULT_KEYRING_FILE", "DATABASE_URL_FILE", "REDIS_URL_FILE"} <= set(files)
            for name, path in files.items():
                folder, file_name = posixpath.split(path)
                (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder] or [None]
                assert mount is not None, f"{where}: {name}={path}, but nothing is mounted at {folder}"
                assert mount.get("readOnly") is True, f"{where}: {folder} must be mounted read-only"
                secret = volumes[mount["name"]].get("secret")
                assert secret and secret["secretName"] == SECRET_NAME, f"{where}: {folder} is not {SECRET_NAME}"
                assert {"key": file_name, "path": file_name} in secret["items"], f"{where}: {name} names no item"


def test_deployment_guide_lists_every_secret_key():
    guide = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    keys = {
        item["key"]
        for target in TARGETS
        for doc in workloads(rendered(target))
        for volume in pod_spec(doc)["volumes"]
        if volume.get("secret", {}).get("secretName") == SECRET_NAME
        for item in volume["secret"]["items"]
    }
    keys |= {r["key"] for a in of_kind(rendered("base"), "TriggerAuthentication") for r in a["spec"]["secretTargetRef"]}
    missing = sorted(key for key in keys if f"`{key}`" not in guide)
    assert not missing, f"docs/DEPLOYMENT.md does not document the Secret keys {missing}"


@pytest.mark.parametrize("target", TARGETS)
def test_config_maps_only_set_variables_the_settings_read(target):
    known = settings_variables()
    for config in of_kind(rendered(target), "ConfigMap"):
        for key in config.get("data", {}):
            assert key.removesuffix("_FILE") in known, f"{key} is not read by portal/settings/ (a typo?)"


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_runs_one_image_tag_and_keeps_no_state_of_its_own(target):
    docs = rendered(target)
    images = {c["image"] for doc in workloads(docs) for c in containers(pod_spec(doc))}
    names_and_tags = {image_name_and_tag(image) for image in images}
    assert {name for name, _ in names_and_tags} <= {"portal", "portal-cuda"}, images
    assert len({tag for _, tag in names_and_tags}) == 1 and "" not in {t for _, t in names_and_tags}, images
    config = config_map(docs, next(c["metadata"]["name"] for c in of_kind(docs, "ConfigMap")
                                   if c["metadata"]["name"].startswith("portal-config-")))  # fmt: skip
    data = config["data"]
    assert data["PORTAL_ENV"] == "production"
    # Pods are disposable: the vault and the offline store live in object storage, and the audit
    # checkpoints on the shared volume that every web and worker pod mounts.
    assert data["VAULT_S3_BUCKET"] and data["FEATURE_STORE_S3_BUCKET"]
    audit_folder = posixpath.dirname(data["AUDIT_CHECKPOINT_PATH"])
    for doc in workloads(docs):
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        if component in ("web", "worker"):
            mounts = {m["mountPath"]: m["name"] for m in pod_spec(doc)["containers"][0]["volumeMounts"]}
            volumes = {v["name"]: v for v in pod_spec(doc)["volumes"]}
            claim = volumes[mounts[audit_folder]]["persistentVolumeClaim"]["claimName"]
            assert "ReadWriteMany" in named(docs, "PersistentVolumeClaim", claim)["spec"]["accessModes"]


@overlays
def test_region_settings_reach_the_settings(overlay):
    docs = rendered(overlay)
    regions = _regions(overlay)
    main = container_env(docs, pod_spec(named(docs, "Deployment", "portal-web"))["containers"][0])
    assert main["PORTAL_REGION"] == regions[0]
    assert main["PORTAL_REGIONS"].split(",") == list(regions)
    for variable in ("VAULT_S3_REGION_BUCKETS", "FEATURE_STORE_S3_REGION_BUCKETS"):
        buckets = dict(item.split("=", 1) for item in main[variable].split(","))
        assert set(buckets) == set(regions), variable
        assert len(set(buckets.values()) | {main[variable.replace("_REGION_BUCKETS", "_BUCKET")]}) == len(regions) + 1


@pytest.mark.parametrize("target", TARGETS)
def test_only_web_and_the_default_worker_reach_out_of_the_namespace(target):
    docs = rendered(target)
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(docs, "NetworkPolicy")}
    deny = policies["portal-default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    wide = {
        name: spec["podSelector"]["matchLabels"]
        for name, spec in policies.items()
        for rule in spec.get("egress", [])
        for peer in rule.get("to", [])
        if peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0"
    }
    assert set(wide) == {"portal-egress-internet"}
    selector = wide["portal-egress-internet"]
    reaching_out = set()
    for doc in workloads(docs):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if selector.items() <= labels.items():
            command = pod_spec(doc)["containers"][0]["command"]
            reaching_out.add("web" if command[0] == "uvicorn" else worker_queue(pod_spec(doc)["containers"][0]))
    # The web calls the OpenID Connect provider; the `default` worker delivers incident webhooks
    # (apps/monitoring/webhooks/delivery.py). Training workers run users' code: never.
    assert reaching_out == {"web", "default"}
    web_ingress = policies["portal-web-ingress"]
    sources = [peer for rule in web_ingress["ingress"] for peer in rule["from"]]
    namespaces = {p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in sources
                  if "namespaceSelector" in p}  # fmt: skip
    assert namespaces == {"ingress-nginx", "monitoring"}
    assert all("ipBlock" not in peer for peer in sources)
