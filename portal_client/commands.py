"""What each `portal` command does (the parser is in cli.py): `handler(args, client) -> exit status`.

Results go to stdout, as JSON with --json or as short text otherwise; progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from portal_client.client import PortalClient
from portal_client.config import save_config
from portal_client.progress import Bar

JOB_FAILED = 3


def _out(text: str) -> None:
    """One line of results on stdout (print is for debugging here: ruff T20)."""
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


# --- output -----------------------------------------------------------------------------------
def __out(args, data: Any, text: str | None = None) -> None:
    if args.json:
        _out(json.dumps(data, indent=2, default=str))
    else:
        _out(text if text is not None else _as_text(data))


def _as_text(data: Any) -> str:
    if isinstance(data, dict):
        return "\n".join(f"{k}: {json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in data.items())
    return json.dumps(data, indent=2, default=str)


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, dict):
            return ",".join(f"{k}={v}" for k, v in value.items())
        if isinstance(value, list):
            return ",".join(map(str, value))
        return "" if value is None else str(value)

    cells = [columns] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells)


def _value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: list[str], what: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} takes KEY=VALUE, not {item!r}.")
        out[key] = _value(value)
    return out


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise UsageError(f"{what} is not valid JSON: {error}") from None


# --- configuration ----------------------------------------------------------------------------
def login(args, _client) -> int:
    url = args.url or os.environ.get("PORTAL_URL")
    token = args.token or os.environ.get("PORTAL_TOKEN")
    if not url or not token:
        raise UsageError("portal login needs --url and --token (create a token on your profile page).")
    me = None if args.no_verify else PortalClient(url, token, timeout=args.timeout, retries=1).me()
    path = save_config(url, token)
    who = f" as {me['username']}" if me else ""
    __out(args, {"config": str(path), "url": url, "username": me and me["username"]}, f"Saved to {path}{who}.")
    return 0


def whoami(args, client: PortalClient) -> int:
    me = client.me()
    __out(args, me, f"{me['username']} at {client.base_url} (scopes: {', '.join(me.get('token_scopes') or [])})")
    return 0


# --- models -----------------------------------------------------------------------------------
def models_list(args, client: PortalClient) -> int:
    models = client.list_models(q=args.q, tag=args.tag)
    __out(args, models, _table(models, ["name", "latest_version", "aliases", "owner", "team", "framework"]))
    return 0


def models_versions(args, client: PortalClient) -> int:
    versions = client.list_versions(args.name)
    for v in versions:
        v["sha256"] = (v.get("artifact") or {}).get("sha256", "")[:12]
    __out(args, versions, _table(versions, ["version", "aliases", "metrics", "created_by", "created_at", "sha256"]))
    return 0


def models_register(args, client: PortalClient) -> int:
    bar = Bar(f"upload {Path(args.file).name}", args.progress)
    try:
        version = client.register_model(
            args.name,
            args.file,
            description=args.description,
            metrics=_pairs(args.metric, "--metric"),
            tags=args.tag,
            lineage=_json_arg(args.lineage, "--lineage") if args.lineage else None,
            state_dict_path=args.state_dict,
            create=not args.no_create,
            team=args.team,
            progress=bar.bytes,
        )
    finally:
        bar.close()
    sha = version["artifact"]["sha256"]
    __out(args, version, f"Registered {args.name} version {version['version']} (sha256 {sha}).")
    return 0


def _version_number(client: PortalClient, model: str, version: str) -> int:
    return int(version) if version.isdigit() else int(client.get_alias(model, version)["version"])


def models_download(args, client: PortalClient) -> int:
    number = _version_number(client, args.name, args.version)
    which = "state-dict" if args.state_dict else "artifact"
    output = args.output or f"{args.name}-v{number}.{'safetensors' if args.state_dict else 'onnx'}"
    bar = Bar(f"download {Path(output).name}", args.progress)
    try:
        result = client.download_version(args.name, number, output, which=which, progress=bar.bytes)
    finally:
        bar.close()
    result.update(model=args.name, version=number)
    __out(args, result, f"Saved {args.name} version {number} to {output} ({result['size']} bytes, sha256 verified).")
    return 0


def alias_get(args, client: PortalClient) -> int:
    if args.alias is None:
        aliases = client.list_aliases(args.model)
        __out(args, aliases, _table(aliases, ["alias", "version", "protected", "moved_by", "moved_at"]))
        return 0
    found = client.get_alias(args.model, args.alias)
    protected = " (protected)" if found.get("protected") else ""
    __out(args, found, f"{args.model}@{found['alias']} -> version {found['version']}{protected}")
    return 0


def alias_set(args, client: PortalClient) -> int:
    moved = client.set_alias(args.model, args.alias, args.version)
    __out(args, moved, f"{args.model}@{moved['alias']} -> version {moved['version']}")
    return 0


# --- features ---------------------------------------------------------------------------------
def features_online(args, client: PortalClient) -> int:
    entities = {}
    for item in args.entity:
        key, sep, values = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--entity takes KEY=V1,V2, not {item!r}.")
        entities[key] = [_value(v) for v in values.split(",") if v != ""]
    answer = client.online_features(args.features, entities)
    key = next(iter(entities))
    rows = []
    for i, entity in enumerate(entities[key]):
        row = {key: entity}
        for feature, result in answer["results"].items():
            row[feature] = result["values"][i] if result["statuses"][i] == "present" else f"({result['statuses'][i]})"
        rows.append(row)
    __out(args, answer, _table(rows, [key, *answer["results"]]))
    return 0


def training_sets_build(args, client: PortalClient) -> int:
    features = [f for item in args.features for f in item.split(",") if f]
    if args.entity_rows:
        rows = _json_arg(Path(args.entity_rows).read_text(encoding="utf-8"), args.entity_rows)
        built = client.build_training_set(args.name, features, entity_rows=rows, team=args.team)
    else:
        bar = Bar(f"upload {Path(args.entity_table).name}", args.progress)
        try:
            built = client.build_training_set(
                args.name, features, entity_table=args.entity_table, team=args.team, progress=bar.bytes
            )
        finally:
            bar.close()
    text = f"Built training set {built['id']} ({built['row_count']} rows, digest {built.get('digest', '')[:12]})."
    __out(args, built, text)
    return 0


def training_sets_data(args, client: PortalClient) -> int:
    if args.output is None:
        rows = client.training_set_rows(args.id)
        _out(json.dumps(rows, indent=None if args.json else 2, default=str))
        return 0
    fmt = args.format or {".csv": "csv", ".json": "json"}.get(Path(args.output).suffix.lower(), "parquet")
    bar = Bar(f"download {Path(args.output).name}", args.progress)
    try:
        result = client.download_training_set(args.id, args.output, format=fmt, progress=bar.bytes)
    finally:
        bar.close()
    masked = f"; masked: {', '.join(result['masked_columns'])}" if result["masked_columns"] else ""
    __out(args, result, f"Saved training set {args.id} to {args.output} ({fmt}, {result['size']} bytes{masked}).")
    return 0


# --- scripts and training ---------------------------------------------------------------------
def scripts_register(args, client: PortalClient) -> int:
    path, cleanup = Path(args.path), None
    if path.is_dir():  # a project folder goes up as a .tar.gz of its files
        handle = tempfile.NamedTemporaryFile(suffix=".tar.gz", prefix=f"{path.name}-", delete=False)  # noqa: SIM115
        handle.close()
        with tarfile.open(handle.name, "w:gz") as archive:
            for item in sorted(path.rglob("*")):
                if item.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in item.parts):
                    archive.add(item, arcname=str(item.relative_to(path)))
        path = cleanup = Path(handle.name)
    bar = Bar(f"upload {path.name}", args.progress)
    try:
        if args.new_version:
            result = client.upload_script_version(args.name, path, entry_point=args.entry_point, progress=bar.bytes)
        else:
            result = client.register_script(
                args.name,
                path,
                entry_point=args.entry_point,
                description=args.description,
                team=args.team,
                progress=bar.bytes,
            )
    finally:
        bar.close()
        if cleanup is not None:
            cleanup.unlink(missing_ok=True)
    number = result.get("version") or result.get("latest_version") or 1
    __out(args, result, f"Registered script {args.name} version {number}.")
    return 0


def scripts_versions(args, client: PortalClient) -> int:
    versions = client.list_script_versions(args.name)
    __out(args, versions, _table(versions, ["version", "digest", "size", "created_by", "created_at"]))
    return 0


def _wait(args, client: PortalClient, job_id: int) -> int:
    bar = Bar(f"job {job_id}", args.progress)
    try:
        job = client.wait_job(job_id, timeout=args.wait_timeout, progress=bar.job)
    finally:
        bar.close()
    version = job.get("model_version")
    made = f", model {version['model']} version {version['version']}" if version else ""
    error = f": {job['error']}" if job.get("error") else ""
    __out(args, job, f"Job {job_id} {job['state']}{made}{error}")
    return 0 if job["state"] == "succeeded" else JOB_FAILED


def train(args, client: PortalClient) -> int:
    if args.list:
        templates = client.list_templates()
        __out(args, templates, _table(templates, ["name", "task", "default_dataset", "description"]))
        return 0
    if (args.template is None) == (args.script is None):
        raise UsageError("Give a template name or --script NAME[:VERSION], one of them.")
    script, version = None, None
    if args.script:
        script, _, number = args.script.partition(":")
        if number and not number.isdigit():
            raise UsageError(f"--script takes NAME[:VERSION], not {args.script!r}.")
        version = int(number) if number else None
    data = _json_arg(args.data, "--data") if args.data else {}
    if args.dataset:
        data["dataset"] = args.dataset
    if args.training_set is not None:
        data.update(training_set=args.training_set, **({"label": args.label} if args.label else {}))
    options = {
        k: getattr(args, k)
        for k in ("resource_class", "region", "priority", "max_runtime_s", "max_memory_mb", "experiment")
        + ("model_name", "team", "seed", "allow_cpu_fallback")
    }
    job = client.launch_job(
        args.template,
        script=script,
        script_version=version,
        params=_pairs(args.param, "--param"),
        data=data or None,
        **options,
    )
    if not args.wait:
        __out(args, job, f"Launched job {job['id']} ({job['state']}, queue {job.get('queue')}).")
        return 0
    if not args.json:
        _err(f"Launched job {job['id']} on queue {job.get('queue')}.")
    return _wait(args, client, job["id"])


def jobs_status(args, client: PortalClient) -> int:
    job = client.get_job(args.id)
    keys = ("id", "template", "state", "progress", "eta_s", "queue", "worker", "attempts", "run", "model_version")
    __out(args, job, _as_text({k: job.get(k) for k in (*keys, "error") if k in job}))
    return 0


def jobs_wait(args, client: PortalClient) -> int:
    return _wait(args, client, args.id)


def jobs_cancel(args, client: PortalClient) -> int:
    job = client.cancel_job(args.id)
    __out(args, job, f"Job {args.id}: {job['state']}" + (" (stopping)" if job.get("cancel_requested") else ""))
    return 0


def jobs_log(args, client: PortalClient) -> int:
    text = client.job_log(args.id)
    if args.json:
        _out(json.dumps({"job": args.id, "text": text}))
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


# --- predict and promotions -------------------------------------------------------------------
def predict(args, client: PortalClient) -> int:
    if args.inputs is not None:
        source, text = "--inputs", args.inputs
    elif args.file is not None:
        source, text = args.file, Path(args.file).read_text(encoding="utf-8")
    else:
        source, text = "stdin", sys.stdin.read()
    inputs = _json_arg(text, source)
    if isinstance(inputs, dict) and "inputs" in inputs:  # a whole predict body
        args.key = args.key or inputs.get("key")
        inputs = inputs["inputs"]
    answer = client.predict(args.endpoint, inputs, key=args.key)
    __out(args, answer, json.dumps(answer["outputs"]) + f"\n(model {answer['model']} v{answer['version']}, "
           f"route {answer['route']}, prediction {answer['prediction_id']})")  # fmt: skip
    return 0


def promote_request(args, client: PortalClient) -> int:
    change = {
        k: v
        for k, v in {
            "type": args.change_type,
            "risk": args.risk,
            "impact": args.impact,
            "rollback_plan": args.rollback_plan,
        }.items()
        if v is not None
    }
    made = client.request_promotion(
        args.model, args.version, args.alias, justification=args.justification, change=change or None
    )
    __out(args, made, f"Promotion request {made['id']}: {made['state']}.")
    return 0


def promote_status(args, client: PortalClient) -> int:
    found = client.get_promotion(args.id)
    lines = [
        f"Promotion {found['id']}: {found.get('model')} v{found.get('version')} -> {found.get('target_alias')}",
        f"state: {found['state']}",
    ]
    lines += [f"check {c['name']}: {c['status']}" for c in found.get("checks") or []]
    lines += [f"decision: {d.get('approver')} {d.get('decision')}" for d in found.get("decisions") or []]
    __out(args, found, "\n".join(lines))
    return 0
