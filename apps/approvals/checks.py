"""The automated checks of a promotion request. Each returns a `Result`: its status, the rule it
applied in words, and the values it compared, so that an approver (and an auditor, later) sees
why it passed or failed, never just a green tick.

No check writes; `apps.approvals.services.promotion_run_checks` stores the results. A check that
has nothing to read answers `no_data` with the reason: it neither passes silently nor blocks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps as django_apps
from django.db.models import Q

from apps.catalog.models import CARD_SECTIONS, ModelCard, ModelVersion
from apps.core import vault
from apps.core.crypto import VaultError

PASSED, FAILED, NO_DATA = "passed", "failed", "no_data"


@dataclass
class Result:
    status: str
    rule: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Subject:
    """What a check looks at: the candidate, the version now behind the alias (or None)."""

    candidate: ModelVersion
    current: ModelVersion | None
    alias: str


def metric_threshold(subject: Subject, params: dict) -> Result:
    """`metric >= <alias>.metric - max_drop` (or `<=` ... `+ max_drop` when lower is better), and
    an absolute floor `min` when given. Without a version behind the alias only the floor applies."""
    metric = params["metric"]
    drop = float(params.get("max_drop", 0.0))
    lower_is_better = bool(params.get("lower_is_better", False))
    candidate = subject.candidate.metrics.get(metric)
    current = subject.current.metrics.get(metric) if subject.current is not None else None
    evidence = {
        "metric": metric,
        "candidate": candidate,
        "current": current,
        "current_version": subject.current.version if subject.current is not None else None,
        "max_drop": drop,
        "lower_is_better": lower_is_better,
    }
    if candidate is None:
        return Result(FAILED, f"{metric} is recorded on the candidate", evidence)
    rules, ok = [], True
    if current is not None:
        evidence["delta"] = round(candidate - current, 12)
        if lower_is_better:
            rules.append(f"{metric} <= {subject.alias}.{metric} + {drop:g}")
            ok = ok and candidate <= current + drop
        else:
            rules.append(f"{metric} >= {subject.alias}.{metric} - {drop:g}")
            ok = ok and candidate >= current - drop
    if "min" in params:
        evidence["min"] = params["min"]
        rules.append(f"{metric} >= {params['min']:g}")
        ok = ok and candidate >= params["min"]
    if not rules:
        reason = (
            f"no version is behind {subject.alias} yet"
            if subject.current is None
            else f"the version behind {subject.alias} has no {metric}"
        )
        evidence["reason"] = f"{reason} and the policy sets no floor (min): nothing to compare against"
        return Result(NO_DATA, f"{metric} >= {subject.alias}.{metric} - {drop:g}", evidence)
    return Result(PASSED if ok else FAILED, " and ".join(rules), evidence)


def onnx_parity(subject: Subject, params: dict) -> Result:
    """The ONNX Runtime parity check recorded at export, within the policy's limit."""
    parity = subject.candidate.onnx_parity or {}
    limit = float(params.get("max_abs_diff", parity.get("tolerance") or 1e-4))
    rule = f"onnx_parity.max_abs_diff <= {limit:g}"
    if "max_abs_diff" not in parity:
        return Result(FAILED, rule, {"recorded": False, "reason": "no parity check was recorded for this version"})
    diff = float(parity["max_abs_diff"])
    return Result(PASSED if diff <= limit else FAILED, rule, {"recorded": True, "limit": limit, **parity})


def model_card(subject: Subject, params: dict) -> Result:
    card = ModelCard.objects.filter(model_id=subject.candidate.model_id).first()
    missing = card.missing_sections() if card is not None else [label for _, label in CARD_SECTIONS]
    completeness = round(1 - len(missing) / len(CARD_SECTIONS), 3)
    evidence = {"completeness": completeness, "missing_sections": missing}
    return Result(PASSED if not missing else FAILED, "every model card section is filled in", evidence)


def artifact_digest(subject: Subject, params: dict) -> Result:
    """Re-read and decrypt the stored ONNX blob; its SHA-256 must equal the one recorded at upload."""
    blob = subject.candidate.artifact
    rule = "sha256(decrypted artifact) == recorded sha256"
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in vault.blob_chunks(blob):
            digest.update(chunk)
            size += len(chunk)
    except (VaultError, OSError) as exc:  # tampered, truncated or missing (IntegrityError is a VaultError)
        return Result(FAILED, rule, {"recorded": blob.sha256, "error": f"{type(exc).__name__}: {exc}"})
    actual = digest.hexdigest()
    evidence = {"recorded": blob.sha256, "computed": actual, "bytes": size, "key": blob.kid}
    return Result(PASSED if actual == blob.sha256 else FAILED, rule, evidence)


def lineage(subject: Subject, params: dict) -> Result:
    version = subject.candidate
    evidence = {
        "run_id": version.run_id or None,
        "training_data_digest": version.training_data_digest or None,
        "training_set": version.training_set or None,
        "code_version": version.code_version or None,
    }
    ok = bool(version.run_id and version.training_data_digest)
    return Result(PASSED if ok else FAILED, "run_id and training_data_digest are recorded", evidence)


def residency(subject: Subject, params: dict) -> Result:
    """The regions of the data the version was trained on (its feature views) are all allowed
    for the alias (`allowed_regions`)."""
    allowed = params.get("allowed_regions")
    names = list(subject.candidate.feature_views or [])
    rule = f"data regions within {allowed}"
    if not allowed:
        return Result(NO_DATA, rule, {"reason": "the policy names no allowed_regions for this alias"})
    if not names:
        return Result(NO_DATA, rule, {"reason": "the version names no feature views, so its data region is unknown"})
    try:  # by name, not import: the catalog and approvals do not depend on the feature store
        feature_view = django_apps.get_model("features", "FeatureView")
    except LookupError:
        return Result(NO_DATA, rule, {"reason": "the feature store is not installed"})
    regions = dict(feature_view.objects.filter(name__in=names).values_list("name", "region"))
    unknown = sorted(set(names) - set(regions))
    outside = sorted({r for r in regions.values() if r not in allowed})
    evidence = {"allowed_regions": allowed, "data_regions": regions, "unknown_views": unknown}
    if outside:
        return Result(FAILED, rule, {**evidence, "outside": outside})
    if unknown:
        return Result(NO_DATA, rule, {**evidence, "reason": "some feature views are not in the portal"})
    return Result(PASSED, rule, evidence)


ALERT_SEVERITIES = ("info", "warning", "critical")


def open_alerts(subject: Subject, params: dict) -> Result:
    """No unresolved alert of at least `severity` (default critical) on the model or on an
    endpoint that serves it (drift, data quality, a rolled-back canary, failed training)."""
    severity = params.get("severity", "critical")
    if severity not in ALERT_SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(ALERT_SEVERITIES)}")
    rule = f"no open {severity} alert (or worse) on the model or its endpoints"
    if not django_apps.is_installed("apps.monitoring"):
        return Result(NO_DATA, rule, {"reason": "monitoring is not installed"})
    alert_model = django_apps.get_model("monitoring", "Alert")
    route_model = django_apps.get_model("serving", "Route")
    model = subject.candidate.model
    endpoints = route_model.objects.filter(model=model).values("endpoint_id")
    wanted = ALERT_SEVERITIES[ALERT_SEVERITIES.index(severity) :]
    found = list(
        alert_model.objects.exclude(state="resolved")
        .filter(Q(model=model) | Q(endpoint__in=endpoints), severity__in=wanted)
        .order_by("-last_seen")
        .values("id", "kind", "severity", "title", "count", "state")[:20]
    )
    evidence = {"open": found, "severity_at_least": severity}
    return Result(FAILED if found else PASSED, rule, evidence)


CHECKS: dict[str, Callable[[Subject, dict], Result]] = {
    "metric_threshold": metric_threshold,
    "onnx_parity": onnx_parity,
    "model_card": model_card,
    "artifact_digest": artifact_digest,
    "lineage": lineage,
    "residency": residency,
    "open_alerts": open_alerts,
}


def run_check(name: str, subject: Subject, params: dict) -> Result:
    """One check; an unexpected error is a failed check with the error as its evidence."""
    try:
        return CHECKS[name](subject, params)
    except Exception as exc:  # a broken check must block the request, not the worker
        return Result(FAILED, name, {"error": f"{type(exc).__name__}: {exc}"})
