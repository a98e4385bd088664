"""Launching a script job: the script's own permission (per team), its parameters and data, then
the same job row, run, routing, sharing and dispatch as a template job (apps.training.services)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.catalog.selectors import version_for
from apps.core import queues
from apps.core.audit import audit_event
from apps.core.errors import Forbidden, NotFound
from apps.core.permissions import can, grant_owner, require, restrict
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.experiments.models import Run
from apps.experiments.services import run_create
from apps.features.models import TrainingSet
from apps.training.models import ScriptVersion, TrainingJob, TrainingScript
from apps.training.scripts.selectors import script_for, version_of
from apps.training.services import job_enqueue, job_launch, resolve_route
from apps.training.services.jobs import (
    MAX_QUEUE_LIMIT_S,
    MAX_RUNTIME_LIMIT_S,
    experiment_of_launch,
    model_name_checked,
    run_name_checked,
    whole_number,
)
from apps.training.services.routing import check_launch_regions

PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
MAX_PARAMS = 100
MAX_PARAM_CHARS = 1000
MAX_MEMORY_LIMIT_MB = 1 << 20


def clean_script_params(params: Any) -> dict[str, Any]:
    """`{name: scalar}` passed as `--name value` and in PORTAL_PARAMS; a field error otherwise."""
    if params in (None, ""):
        return {}
    if not isinstance(params, dict) or len(params) > MAX_PARAMS:
        raise ValidationError({"params": [f"params is an object of at most {MAX_PARAMS} names and values."]})
    for name, value in params.items():
        if not PARAM_NAME_RE.match(name):
            raise ValidationError({"params": [f"{name!r} is not a parameter name (letters, digits, _ and -)."]})
        if value is None or not isinstance(value, str | int | float | bool) or len(str(value)) > MAX_PARAM_CHARS:
            raise ValidationError(
                {f"params.{name}": [f"Give a string, number or boolean of at most {MAX_PARAM_CHARS} characters."]}
            )
    return dict(params)


def clean_script_data(data: Any, *, actor) -> tuple[dict, TrainingSet | None, str | None]:
    """(spec, training set, data region) of `{"training_set": id}`, `{"artifact": "model:version"}`
    or nothing; what the actor cannot view reads as missing."""
    if data in (None, "", {}):
        return {}, None, None
    if not isinstance(data, dict) or len(data) != 1 or not set(data) <= {"training_set", "artifact"}:
        raise ValidationError({"data": ['Give {"training_set": id} or {"artifact": "model:version"}, or nothing.']})
    if "training_set" in data:
        raw = data["training_set"]
        if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit() or len(str(raw)) > 18:
            raise ValidationError({"data": ["training_set is the id of a training set."]})
        found = restrict(actor, "view", TrainingSet.objects.all()).filter(pk=int(raw)).first()
        if found is None:
            raise ValidationError({"data": [f"No training set {raw} is visible to you."]})
        return {"training_set": found.pk}, found, found.region
    raw = data["artifact"]
    name, _, number = raw.rpartition(":") if isinstance(raw, str) else ("", "", "")
    if not name or not number.isdigit() or len(number) > 9:
        raise ValidationError({"data": ['artifact names a model version as "model:version", e.g. "churn:3".']})
    try:
        version = version_for(actor, name, int(number))
    except NotFound:
        raise ValidationError({"data": [f"No model version {raw} is visible to you."]}) from None
    return {"artifact": f"{name}:{version.version}", "model_version": version.pk}, None, version.region


def _numbers(*, priority, max_runtime_s, max_memory_mb, max_queue_s) -> dict[str, int | None]:
    errors: dict[str, list[str]] = {}
    numbers = {
        "priority": whole_number(errors, "priority", priority, 5, 0, 9),
        "max_runtime_s": whole_number(errors, "max_runtime_s", max_runtime_s, 3600, 1, MAX_RUNTIME_LIMIT_S),
        "max_memory_mb": whole_number(
            errors, "max_memory_mb", max_memory_mb, settings.TRAINING_SCRIPT_MEMORY_MB, 32, MAX_MEMORY_LIMIT_MB
        ),
        "max_queue_s": None
        if max_queue_s is None
        else whole_number(errors, "max_queue_s", max_queue_s, 0, 60, MAX_QUEUE_LIMIT_S),
    }
    if errors:
        raise ValidationError(errors)
    return numbers


def _version_chosen(script: TrainingScript, script_version: Any) -> ScriptVersion:
    if script_version is not None and (isinstance(script_version, bool) or not isinstance(script_version, int)):
        raise ValidationError({"script_version": ["script_version is a version number (default: the latest)."]})
    try:
        return version_of(script, script_version)
    except NotFound as exc:
        raise ValidationError({"script_version": [str(exc)]}) from None


def script_job_launch(
    *, actor, script: Any, script_version: Any = None, params: Any = None, data: Any = None,
    resource_class: str = "cpu", region: str | None = None, priority: int | None = None,
    max_runtime_s: int | None = None, max_memory_mb: int | None = None, allow_cpu_fallback: bool = False,
    experiment: int | None = None, experiment_name: str | None = None, model_name: str | None = None,
    team: str | None = None, run_name: str | None = None, max_queue_s: int | None = None, **ignored: Any,
) -> TrainingJob:  # fmt: skip
    """Launch version `script_version` (default: the latest) of the script called `script`.

    `NotFound` when the actor cannot view the script; `Forbidden` without the role's add permission
    on jobs or without the script-launch permission of one of their teams; `ValidationError` per
    bad field. The launch is audited on the script with its version's digest. Template-only
    fields (`template`, `seed`) in `ignored` must be empty."""
    if ignored.get("template") or ignored.get("seed") is not None:
        raise ValidationError({"template": ["Give a template or a script, not both."]})
    found = script_for(actor, script if isinstance(script, str) else "", "view")
    require(actor, "add", TrainingJob)
    if not can(actor, "launch", found):
        raise Forbidden(
            "Launching a training script needs the script-launch permission, which platform admins grant to "
            "teams; ask one to grant it to a team of yours."
        )
    version = _version_chosen(found, script_version)
    found_team = team_for_create(actor=actor, slug=team)
    clean_params = clean_script_params(params)
    data_spec, training_set, data_region = clean_script_data(data, actor=actor)
    numbers = _numbers(priority=priority, max_runtime_s=max_runtime_s, max_memory_mb=max_memory_mb,
                       max_queue_s=max_queue_s)  # fmt: skip
    if resource_class not in queues.RESOURCE_CLASSES:
        raise ValidationError({"resource_class": [f"Use one of {', '.join(queues.RESOURCE_CLASSES)}."]})
    if region is not None and not isinstance(region, str):
        raise ValidationError({"region": ["region is a region name such as uae-north."]})
    if not isinstance(allow_cpu_fallback, bool):
        raise ValidationError({"allow_cpu_fallback": ["allow_cpu_fallback is true or false."]})
    queue, region_name, device, warning = resolve_route(
        resource_class=resource_class, region=region or None, data_region=data_region,
        allow_cpu_fallback=allow_cpu_fallback, actor=actor, obj=training_set,
    )  # fmt: skip
    model = model_name_checked(actor, model_name, found.name)
    check_launch_regions(
        actor=actor, region=data_region, experiment_id=experiment, experiment_name=experiment_name, model_name=model
    )
    return _create(
        actor=actor, version=version, team=found_team, params=clean_params, data=data_spec,
        training_set=training_set, queue=queue, region=region_name, device=device, warning=warning,
        resource_class=resource_class, allow_cpu_fallback=allow_cpu_fallback, model_name=model,
        experiment=experiment, experiment_name=(experiment_name or "").strip() or None,
        run_name=run_name_checked(run_name), data_region=data_region, numbers=numbers,
    )  # fmt: skip


@transaction.atomic
def _create(*, actor, version: ScriptVersion, team, params, data, training_set, queue, region, device, warning,
            resource_class, allow_cpu_fallback, model_name, experiment, experiment_name, run_name, data_region,
            numbers) -> TrainingJob:  # fmt: skip
    script = version.script
    exp = experiment_of_launch(actor, script.name, experiment, team, experiment_name)
    job = TrainingJob.objects.create(
        owner=actor, team=team, template=f"script:{script.name}"[:100], script_version=version, params=params,
        data=data, training_set=training_set, resource_class=resource_class, region=region, queue=queue,
        allow_cpu_fallback=allow_cpu_fallback, device=device, warning=warning, celery_task_id=str(uuid.uuid4()),
        experiment=exp, model_name=model_name, **numbers,
    )  # fmt: skip
    run_params = {**{k: str(v) for k, v in params.items()}, "script": f"{script.name}:{version.version}"}
    job.run = run_create(
        experiment=exp, name=run_name or f"job-{job.pk}", actor=actor, source=Run.Source.JOB, params=run_params,
        tags={"training_job": str(job.pk), "queue": queue, "script_digest": version.digest},
        status=Run.Status.QUEUED, region=data_region,
    )  # fmt: skip
    job.save(update_fields=["run"])
    grant_owner(job)
    share_with_team_on_create(job, team)
    audit_event(
        actor=actor, event="trainingscript.launch", obj=script,
        data={"job": job.pk, "version": version.version, "digest": version.digest, "queue": queue},
    )  # fmt: skip
    job_enqueue(job)
    return job


def training_launch(*, actor, script: Any = None, script_version: Any = None, max_memory_mb: Any = None,
                    **fields: Any) -> TrainingJob:  # fmt: skip
    """The jobs API's launch: a script job when `script` is given, else a template job
    (`apps.training.services.job_launch`, which knows nothing of scripts)."""
    if script not in (None, ""):
        return script_job_launch(
            actor=actor, script=script, script_version=script_version, max_memory_mb=max_memory_mb, **fields
        )
    for name, value in (("script_version", script_version), ("max_memory_mb", max_memory_mb)):
        if value is not None:
            raise ValidationError({name: [f"{name} applies to script jobs; give script too."]})
    return job_launch(actor=actor, **fields)
