"""The container image recipe (Dockerfile): multi-stage, a non-root user that matches the manifests,
requirements.txt's torch pin from the CPU index, the port the manifests probe, and only files that
exist and that .dockerignore lets into the build context. (No image is built here: no Docker daemon.)
"""

from __future__ import annotations

import re
import shlex

from tests.deploy.manifests import ROOT, named, pod_spec, rendered, workloads


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):  # a comment inside a continued instruction
            continue
        current += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(item.split(None, 1)[0].upper(), item.split(None, 1)[1] if " " in item else "") for item in logical]


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions():
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _arg_default(name: str) -> str:
    for instruction, arguments in _instructions():
        if instruction == "ARG" and arguments.startswith(f"{name}="):
            return arguments.split("=", 1)[1]
    raise AssertionError(f"the Dockerfile declares no ARG {name}=<default>")


def test_image_is_multi_stage_and_the_runtime_copies_from_the_build():
    stages = _stages()
    assert len(stages) >= 2
    names = [args.split()[-1] for (_, args), *_ in stages if " AS " in args.upper()]
    runtime = stages[-1]
    copied_from = {re.search(r"--from=(\S+)", args).group(1) for ins, args in runtime if "--from=" in args}
    assert copied_from and copied_from <= set(names[:-1]), "the runtime stage copies the build stage's results"
    assert not any(ins == "RUN" and "pip install" in args for ins, args in runtime), "no installing at runtime"


def test_image_runs_as_the_non_root_user_the_manifests_expect():
    users = [args for ins, args in _stages()[-1] if ins == "USER"]
    assert users, "the runtime stage sets a USER"
    user, _, group = users[-1].partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"
    for target in ("overlays/one-region", "overlays/two-regions"):
        for doc in workloads(rendered(target)):
            assert pod_spec(doc)["securityContext"]["runAsUser"] == int(user), doc["metadata"]["name"]


def test_torch_is_requirements_pin_from_the_cpu_index():
    (pin,) = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.startswith("torch==")]
    assert _arg_default("TORCH_VERSION") == pin.removeprefix("torch==")
    assert _arg_default("TORCH_INDEX_URL") == "https://download.pytorch.org/whl/cpu"
    installs = " ".join(args for ins, args in _instructions() if ins == "RUN" and "pip install" in args)
    assert '--index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"' in installs
    assert "-r requirements.txt" in installs
    # The CUDA variant is the same recipe with another index, documented for the GPU workers.
    guide = (ROOT / "docs" / "DEPLOYMENT.md").read_text()
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu" in guide and "portal-cuda" in guide


def test_image_exposes_the_port_the_manifests_probe_on_healthz():
    exposed = {int(port.split("/")[0]) for ins, args in _instructions() if ins == "EXPOSE" for port in args.split()}
    healthcheck = [args for ins, args in _instructions() if ins == "HEALTHCHECK" and args.strip() != "NONE"]
    web = pod_spec(named(rendered("base"), "Deployment", "portal-web"))["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in web["ports"]}
    probed = {ports[web[p]["httpGet"]["port"]] for p in ("readinessProbe", "livenessProbe") if web[p]["httpGet"]["path"] == "/healthz"}  # fmt: skip
    assert healthcheck or probed, "either a HEALTHCHECK or the manifests' /healthz probes"
    assert probed and probed <= exposed


def test_every_copied_path_exists_and_is_in_the_build_context():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    included = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert "**" in patterns, ".dockerignore starts from nothing and lists what the build needs"
    sources = []
    for instruction, arguments in _instructions():
        if instruction not in ("COPY", "ADD"):
            continue
        assert instruction == "COPY", "ADD fetches and unpacks; COPY is all the image needs"
        words = [w for w in shlex.split(arguments) if not w.startswith("--")]
        if "--from=" in arguments:
            continue
        sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert source.rstrip("/").split("/")[0] in included, f"COPY {source}: .dockerignore leaves it out"


def test_default_command_is_exec_form_and_environment_matches_the_manifests():
    (command,) = [args for ins, args in _instructions() if ins == "CMD"]
    assert command.startswith("["), "exec form: the process gets SIGTERM itself"
    env_line = " ".join(args for ins, args in _stages()[-1] if ins == "ENV")
    var_dir = re.search(r"PORTAL_VAR_DIR=(\S+)", env_line).group(1)
    config = next(d for d in rendered("base") if d["kind"] == "ConfigMap")
    assert config["data"]["PORTAL_VAR_DIR"] == var_dir
    assert "PORTAL_ENV=production" in env_line
