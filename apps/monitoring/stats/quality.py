"""Data-quality checks of a current sample against a reference profile: schema, missing values, ranges, categories.

Each check has a status ("ok", "warning", "violation") from the limits in QUALITY_LIMITS; a column's status is
its worst check, the report's status the worst of the schema and every column.
"""

from __future__ import annotations

import numpy as np

from apps.monitoring.stats.columns import CATEGORICAL, EXAMPLES, NUMERIC, as_float, count_categories

QUALITY_LIMITS = {
    # Missing-value rate above the reference's rate by more than this (absolute): warning / violation.
    "missing_warning": 0.02,
    "missing_violation": 0.10,
    # Share of values outside the reference [min, max]: a larger sample legitimately reaches a little further.
    "range_warning": 0.001,
    "range_violation": 0.01,
    # Share of values in categories the reference never had: any is a warning.
    "new_category_warning": 0.0,
    "new_category_violation": 0.01,
    # Share of values of the wrong type (text in a numeric column): any is a warning.
    "wrong_type_warning": 0.0,
    "wrong_type_violation": 0.01,
}
ORDER = {"ok": 0, "warning": 1, "violation": 2}


def quality_check(profile: dict, current: dict[str, np.ndarray], *, expected: dict[str, str] | None = None) -> dict:
    """Check `current` against `profile`; `expected` overrides the profile's kind ("numeric"/"categorical").

    Returns `{"status", "rows", "schema": {"status", "missing_columns", "unexpected_columns", "wrong_type"},
    "features": {name: {"kind", "status", "missing", "out_of_range" | "new_categories"}}}`; every check has
    counts, shares and up to 5 examples.
    """
    features = profile.get("features", {})
    kinds = {name: summary["kind"] for name, summary in features.items()} | (expected or {})
    missing_columns = [name for name in kinds if name not in current]
    unexpected = [name for name in current if name not in kinds]
    wrong_type: dict[str, dict] = {}
    results: dict[str, dict] = {}
    rows = len(next(iter(current.values()))) if current else 0
    for name, kind in kinds.items():
        if name not in current:
            continue
        values = np.asarray(current[name])
        summary = features.get(name, {})
        if kind == NUMERIC:
            floats, bad, examples = as_float(values)
            if bad:
                share = bad / len(values)
                wrong_type[name] = {
                    "count": bad,
                    "share": share,
                    "examples": examples,
                    "status": _level(share, "wrong_type"),
                }
            results[name] = _numeric(summary, floats, bad)
        elif kind == CATEGORICAL:
            results[name] = _categorical(summary, values)
        else:
            raise ValueError(f"unknown kind {kind!r} for {name!r}")
    schema_status = "violation" if missing_columns else ("warning" if unexpected else "ok")
    schema_status = _worst([schema_status, *(w["status"] for w in wrong_type.values())])
    schema = {
        "status": schema_status,
        "missing_columns": missing_columns,
        "unexpected_columns": unexpected,
        "wrong_type": wrong_type,
    }
    return {
        "status": _worst([schema_status, *(r["status"] for r in results.values())]),
        "rows": rows,
        "schema": schema,
        "features": results,
    }


def _level(share: float, check: str) -> str:
    if share > QUALITY_LIMITS[f"{check}_violation"]:
        return "violation"
    if share > QUALITY_LIMITS[f"{check}_warning"]:
        return "warning"
    return "ok"


def _worst(statuses) -> str:
    return max(statuses, key=ORDER.__getitem__, default="ok")


def _missing(summary: dict, missing: int, total: int) -> dict:
    ref_total = summary.get("n", 0) + summary.get("missing", 0)
    ref_rate = summary.get("missing", 0) / ref_total if ref_total else 0.0
    rate = missing / total if total else 0.0
    return {
        "count": missing,
        "rate": rate,
        "reference_rate": ref_rate,
        "status": _level(rate - ref_rate, "missing"),
    }


def _numeric(summary: dict, floats: np.ndarray, wrong: int) -> dict:
    # Wrong-typed values were turned into NaN: they are reported under the schema, not as missing.
    missing = len(floats) - int(np.isfinite(floats).sum()) - wrong  # NaN and +-inf, as in the profile
    result = {"kind": NUMERIC, "missing": _missing(summary, missing, len(floats))}
    lo, hi = summary.get("min"), summary.get("max")
    if lo is None or hi is None:
        result["out_of_range"] = {"count": 0, "share": 0.0, "below": 0, "above": 0, "examples": [], "status": "ok"}
    else:
        below_mask = (floats < lo) & (floats > -np.inf)  # infinities are missing values, not out of range
        above_mask = (floats > hi) & (floats < np.inf)
        below, above = int(below_mask.sum()), int(above_mask.sum())
        count = below + above
        examples = floats[below_mask | above_mask][:EXAMPLES].tolist() if count else []
        present = len(floats) - missing - wrong
        share = count / present if present else 0.0
        result["out_of_range"] = {
            "count": count,
            "share": share,
            "below": below,
            "above": above,
            "reference_min": lo,
            "reference_max": hi,
            "examples": examples,
            "status": _level(share, "range"),
        }
    result["status"] = _worst([result["missing"]["status"], result["out_of_range"]["status"]])
    return result


def _categorical(summary: dict, values: np.ndarray) -> dict:
    counter, missing = count_categories(values)
    present = sum(counter.values())
    result = {"kind": CATEGORICAL, "missing": _missing(summary, missing, len(values))}
    known = {label for label, _ in summary.get("top", [])}
    if summary.get("other"):
        # The profile keeps the top categories only: beyond them a category cannot be told new from rare.
        result["new_categories"] = {"count": 0, "share": 0.0, "examples": [], "status": "ok", "checked": False}
    else:
        new = {label: count for label, count in counter.items() if label not in known}
        count = sum(new.values())
        share = count / present if present else 0.0
        result["new_categories"] = {
            "count": count,
            "distinct": len(new),
            "share": share,
            "examples": sorted(new, key=lambda k: -new[k])[:EXAMPLES],
            "status": _level(share, "new_category"),
            "checked": True,
        }
    result["status"] = _worst([result["missing"]["status"], result["new_categories"]["status"]])
    return result
