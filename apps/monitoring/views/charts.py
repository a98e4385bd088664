"""What the monitoring pages' Plotly charts draw, as plain JSON-able dicts (static/portal/monitoring.js
draws them): histograms as shares per labelled bin, time series per route. No queries here: the
views hand in what the selectors read."""

from __future__ import annotations

from apps.core.format import num

MAX_FEATURE_CHARTS = 200  # histograms sent with a report or profile page (a picker shows one at a time)
STATUS_ORDER = {"drift": 0, "warning": 1, "missing": 2, "ok": 3}


def histogram(summary: dict | None) -> dict | None:
    """Display histogram -> {"labels", "shares", "counts"}: numeric `edges`/`counts` (bins
    (e[k-1], e[k]], the first and last open-ended) or categorical `categories`/`counts`."""
    if not summary or not summary.get("counts"):
        return None
    counts = [int(c) for c in summary["counts"]]
    total = sum(counts) or 1
    if "categories" in summary:
        labels = [str(c) for c in summary["categories"]]
    else:
        labels = _bin_labels(summary.get("edges") or [], len(counts))
    return {"labels": labels, "counts": counts, "shares": [c / total for c in counts]}


def _bin_labels(edges: list[float], bins: int) -> list[str]:
    if bins == 1 or len(edges) != bins + 1:
        return [f"bin {i + 1}" for i in range(bins)]
    labels = [f"≤ {num(edges[1], 3)}"]
    labels += [f"{num(edges[k - 1], 3)} – {num(edges[k], 3)}" for k in range(2, bins)]
    return [*labels, f"> {num(edges[-2], 3)}"]


def profile_histogram(summary: dict) -> dict | None:
    """A reference profile column: its numeric display histogram, or its top categories (+ other)."""
    if summary.get("kind") == "categorical":
        top = summary.get("top") or []
        categories = [label for label, _ in top] + (["other"] if summary.get("other") else [])
        counts = [count for _, count in top] + ([summary["other"]] if summary.get("other") else [])
        return histogram({"categories": categories, "counts": counts})
    return histogram(summary.get("hist"))


def comparison(features: dict, predictions: dict) -> dict:
    """Reference against current per feature (masked ones left out) and per prediction column."""

    def pair(result: dict) -> dict | None:
        reference, current = histogram(result.get("reference")), histogram(result.get("current"))
        if reference is None or current is None:
            return None
        return {"kind": result.get("kind"), "status": result.get("status"), "reference": reference, "current": current}

    charts = {}
    for name, result in list(features.items())[:MAX_FEATURE_CHARTS]:
        if not result.get("masked") and (drawn := pair(result)) is not None:
            charts[name] = drawn
    return {"features": charts, "predictions": {n: p for n, r in (predictions or {}).items() if (p := pair(r))}}


def feature_rows(features: dict) -> list[dict]:
    """The per-feature table: drifted first, then warnings, missing, ok; larger PSI first within."""
    rows = []
    for name, result in features.items():
        ks, chi2 = result.get("ks") or {}, result.get("chi2") or {}
        rows.append({
            "name": name, "kind": result.get("kind"), "status": result.get("status"), "psi": result.get("psi"),
            "ks_statistic": ks.get("statistic"), "ks_p": ks.get("p_value"), "chi2_p": chi2.get("p_value"),
            "js": result.get("js"), "n": result.get("n"), "missing": result.get("missing"),
            "masked": bool(result.get("masked")),
        })  # fmt: skip
    return sorted(rows, key=lambda r: (STATUS_ORDER.get(r["status"], 4), -(r["psi"] or 0), r["name"]))


def examples_text(examples) -> str:
    """Example values as one line; a masked feature's examples are already a sentence."""
    if isinstance(examples, str):
        return examples
    return ", ".join(
        num(x) if isinstance(x, int | float) and not isinstance(x, bool) else str(x) for x in examples or []
    )


def quality_rows(quality: dict) -> list[dict]:
    """Per feature with a problem (warning or violation): missing, out of range, new categories."""
    rows = []
    for name, result in (quality.get("features") or {}).items():
        if result.get("status", "ok") == "ok":
            continue
        check = result.get("out_of_range") or result.get("new_categories") or {}
        rows.append({"name": name, **result, "examples": examples_text(check.get("examples"))})
    return sorted(rows, key=lambda r: (r.get("status") != "violation", r["name"]))


def wrong_types(schema: dict) -> list[dict]:
    return [
        {"name": name, **found, "examples": examples_text(found.get("examples"))}
        for name, found in (schema.get("wrong_type") or {}).items()
    ]


def drift_series(history: list[dict], route: str) -> dict:
    """Drift score over time: drifted share per route, and PSI per feature on `route` (the 8
    features with the largest latest PSI)."""
    routes: dict[str, dict] = {}
    for point in history:
        line = routes.setdefault(point["route"], {"route": point["route"], "x": [], "share": [], "status": []})
        line["x"].append(point["at"].isoformat())
        line["share"].append(point["share"])
        line["status"].append(point["status"])
    mine = [p for p in history if p["route"] == route]
    latest = mine[-1]["psi"] if mine else {}
    top = sorted(latest, key=lambda k: -(latest[k] or 0))[:8]
    psi = [{"feature": f, "x": [p["at"].isoformat() for p in mine], "y": [p["psi"].get(f) for p in mine]} for f in top]
    return {"routes": list(routes.values()), "psi": psi, "route": route}


def traffic_series(series: list[dict]) -> dict:
    """Per route and minute: requests, error rate, p50 and p95 latency (the overview's lines)."""
    routes: dict[str, dict] = {}
    for point in sorted(series, key=lambda p: (p["route"], p["minute"])):
        line = routes.setdefault(
            point["route"], {"route": point["route"], "x": [], "requests": [], "error_rate": [], "p50": [], "p95": []}
        )
        line["x"].append(point["minute"].isoformat())
        line["requests"].append(point["requests"])
        line["error_rate"].append(point["error_rate"])
        line["p50"].append(point["p50_ms"])
        line["p95"].append(point["p95_ms"])
    return {"routes": list(routes.values())}


QUALITY_METRICS = ("accuracy", "auc", "mae", "rmse")
TRAINING_NAMES = {"accuracy": ("accuracy", "val_accuracy"), "auc": ("roc_auc", "auc"), "rmse": ("rmse", "val_rmse"),
                  "mae": ("mae",)}  # fmt: skip


def quality_series(quality: dict) -> dict:
    """Model quality per route and metric over time, with the training value as a reference."""
    lines: dict[tuple[str, str], dict] = {}
    for point in quality.get("series") or []:
        for metric in QUALITY_METRICS:
            if point.get(metric) is None:
                continue
            line = lines.setdefault((point["route"], metric), {"route": point["route"], "metric": metric, "x": [],
                                                               "y": [], "training": None})  # fmt: skip
            line["x"].append(point["start"].isoformat())
            line["y"].append(point[metric])
            training = point.get("training") or {}
            for key in TRAINING_NAMES[metric]:
                if training.get(key) is not None:
                    line["training"] = training[key]
                    break
    return {"lines": list(lines.values())}
