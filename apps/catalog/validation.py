"""Input cleaning for the catalog's services: tags, metrics, lineage and ONNX parity summaries.

Pure functions, no database: each returns the clean value or raises Django's
`ValidationError({field: [...]})` naming what to fix.
"""

from __future__ import annotations

import math
import re
from typing import Any

from django.core.exceptions import ValidationError

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
MAX_TAGS = 20
MAX_METRICS = 200
LINEAGE_TEXT = {"run_id": 64, "training_set": 200, "training_data_digest": 128, "code_version": 200}
LINEAGE_FIELDS = (*LINEAGE_TEXT, "feature_views", "package_versions", "seed")


def clean_tags(tags: Any, field: str = "tags") -> list[str]:
    if tags in (None, ""):
        return []
    if isinstance(tags, str):
        tags = [t for t in re.split(r"[,\s]+", tags) if t]
    if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
        raise ValidationError({field: ['Give tags as a list of strings, e.g. ["fraud", "tabular"].']})
    cleaned = sorted({t.strip().lower() for t in tags if t.strip()})
    bad = [t for t in cleaned if not TAG_RE.match(t)]
    if bad:
        raise ValidationError({field: [f"Invalid tag(s) {', '.join(bad[:5])}: use lowercase letters, digits, . _ -"]})
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({field: [f"At most {MAX_TAGS} tags."]})
    return cleaned


def clean_metrics(metrics: Any) -> dict[str, float]:
    if metrics in (None, ""):
        return {}
    if not isinstance(metrics, dict):
        raise ValidationError({"metrics": ['Give metrics as an object of numbers, e.g. {"auc": 0.93}.']})
    if len(metrics) > MAX_METRICS:
        raise ValidationError({"metrics": [f"At most {MAX_METRICS} metrics."]})
    cleaned = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 100:
            raise ValidationError({"metrics": ["Metric names are strings of 1-100 characters."]})
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationError({"metrics": [f"Metric {key!r} must be a finite number."]})
        cleaned[key] = float(value)
    return cleaned


def clean_lineage(lineage: Any) -> dict[str, Any]:
    lineage = lineage or {}
    if not isinstance(lineage, dict):
        raise ValidationError({"lineage": ["Give lineage as an object (run_id, training_set, ...)."]})
    unknown = sorted(set(lineage) - set(LINEAGE_FIELDS))
    if unknown:
        raise ValidationError(
            {"lineage": [f"Unknown lineage field(s) {', '.join(unknown)}; known: {', '.join(LINEAGE_FIELDS)}."]}
        )
    out: dict[str, Any] = {}
    for key, limit in LINEAGE_TEXT.items():
        value = lineage.get(key)
        if value in (None, ""):
            out[key] = ""
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or len(value) > limit:
            raise ValidationError({key: [f"{key} must be a string of at most {limit} characters."]})
        out[key] = value.strip()
    views = lineage.get("feature_views") or []
    if not isinstance(views, list) or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in views):
        raise ValidationError({"feature_views": ["feature_views is a list of feature view names."]})
    out["feature_views"] = views[:100]
    packages = lineage.get("package_versions") or {}
    if not isinstance(packages, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 100 and len(v) <= 100 for k, v in packages.items()
    ):
        raise ValidationError(
            {"package_versions": ['package_versions maps names to versions, e.g. {"torch": "2.5.1"}.']}
        )
    out["package_versions"] = dict(list(packages.items())[:200])
    seed = lineage.get("seed")
    if seed in (None, ""):
        out["seed"] = None
    else:
        try:
            seed = int(seed)
        except (TypeError, ValueError):
            raise ValidationError({"seed": ["seed must be an integer."]}) from None
        if not -(2**63) <= seed < 2**63:
            raise ValidationError({"seed": ["seed must fit in 64 bits."]})
        out["seed"] = seed
    return out


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def clean_onnx_parity(parity: Any) -> dict[str, Any]:
    """The parity check to keep with a version, from the engine's export summary
    (`OnnxExport.summary()`: parity_max_abs_diff, tolerance, parity_threshold, exporter,
    batch_sizes_checked) or the stored form (max_abs_diff, tolerance, ...). None or {} means no
    check was made."""
    if not parity:
        return {}
    if not isinstance(parity, dict):
        raise ValidationError({"onnx_parity": ["Give the parity check as an object."]})
    diff = parity.get("max_abs_diff", parity.get("parity_max_abs_diff"))
    tolerance = parity.get("tolerance")
    threshold = parity.get("threshold", parity.get("parity_threshold"))
    if not _finite_number(diff) or diff < 0:
        raise ValidationError({"onnx_parity": ["max_abs_diff must be a finite number of at least 0."]})
    if not _finite_number(tolerance) or tolerance <= 0:
        raise ValidationError({"onnx_parity": ["tolerance must be a positive number."]})
    sizes = parity.get("batch_sizes_checked") or []
    if not isinstance(sizes, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in sizes):
        raise ValidationError({"onnx_parity": ["batch_sizes_checked is a list of integers."]})
    return {
        "max_abs_diff": float(diff),
        "tolerance": float(tolerance),
        "threshold": float(threshold) if _finite_number(threshold) else float(tolerance),
        "exporter": str(parity.get("exporter") or "")[:40],
        "batch_sizes_checked": sizes[:20],
    }
