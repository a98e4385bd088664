"""Drift of a current sample against a stored reference profile: PSI, KS, chi-square and Jensen-Shannon per column.

Numeric columns: each current column is sorted once (numpy's SIMD sort, ~20 ms per million values, GIL
released, two columns at a time) and its counts at the profile's fine grid points are read off with one small
`searchsorted` of the grid into the sorted column. From those counts:

- KS: the profile gives the reference CDF exactly at every grid point and just below it (its left limit);
  the sorted current column gives both for the current sample. D_grid, the largest gap at and just below the
  grid points, is a lower bound of the exact two-sample statistic D. Between two grid points each CDF only
  rises, from its value at the left point to its left limit at the right point, which bounds D from above:
  D <= max over cells of max(F_ref(g_j-) - F_cur(g_{j-1}), F_cur(g_j-) - F_ref(g_{j-1})) (open end cells
  included). The result reports D_grid as the statistic and `max_error` = that bound - D_grid. On continuous
  data this is at most about one grid cell's reference mass, 1/2000 = 0.0005 (plus the current sample's mass
  in one cell); when every distinct reference value holds at least 1/2000 of the reference (a discrete
  column) the grid holds every value and the error is 0. The p-value of D_grid comes from the
  Kolmogorov distribution with Stephens' correction, Q((sqrt(e) + 0.12 + 0.11 / sqrt(e)) * D), e = n*m/(n+m):
  within ~2 % of `scipy.stats.kstwo.sf(D, round(e))` (what `ks_2samp(method="asymp")` returns) for e >= 20
  and p >= 1e-4, in microseconds; kstwo.sf itself takes up to 2.5 s per column at e = 500,000.
- PSI and Jensen-Shannon distance (base 2) on the reference deciles (grid points), PSI with proportions
  clipped at 1e-4 so empty bins stay finite.

Categorical columns: chi-square test of homogeneity (reference counts against current counts, 2 x k table)
over the reference's top categories, "other" and "new" (current categories outside the top list: counted as
"new" when the reference had no other categories, as "other" otherwise), Jensen-Shannon and PSI on the same
cells.

Status rule (per column, with its effective thresholds; a threshold set to None is not used):
- "drift" when the test rejects (KS p < ks_p, or chi-square p < chi2_p), or PSI >= psi, or JS >= js;
- "warning" when not drift but PSI >= psi / 2 or JS >= js / 2 (effect sizes only: p-values of 20 unshifted
  columns fall under 2 x 0.05 too often to mean anything);
- "ok" otherwise; "missing" when the profile has the column and the current sample does not.
PSI and JS carry sampling noise that grows as the current sample shrinks (an unchanged normal column gives a
JS distance of ~0.02 at 5,000 rows but ~0.09 at 200, where 18 % of such samples would cross 0.1), so they only
count for a column with at least `min_rows` values on both sides; below that the test alone decides.
Overall: "drift" when drifted columns / compared columns >= drift_share or any prediction column drifted;
"warning" when any column or prediction is drift, warning or missing; "ok" otherwise.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import special, stats

from apps.monitoring.stats.columns import CATEGORICAL, NUMERIC, as_float, count_categories, unpack
from apps.monitoring.stats.profile import display_counts, finite_sorted

DEFAULT_THRESHOLDS = {
    "psi": 0.2,  # population stability index on reference deciles: >= 0.2 is the usual "significant shift"
    "ks_p": 0.05,  # KS p-value below this: numeric drift
    "chi2_p": 0.05,  # chi-square p-value below this: categorical drift
    "js": 0.1,  # Jensen-Shannon distance (base 2, 0..1) at or above this: drift
    "drift_share": 0.5,  # share of drifted columns that makes the whole report "drift"
    "min_rows": 1000,  # PSI and JS count only with this many values in the reference and the current column
}
PSI_EPS = 1e-4
THREADS = max(1, min(2, os.cpu_count() or 1))


def drift_compare(
    profile: dict,
    current: dict[str, np.ndarray],
    *,
    predictions: dict[str, np.ndarray] | None = None,
    thresholds: dict | None = None,
    overrides: dict[str, dict] | None = None,
) -> dict:
    """Compare `current` columns (and `predictions`) with the reference `profile` built by `profile_build`.

    `thresholds` replaces keys of DEFAULT_THRESHOLDS for the whole report, `overrides[column]` for one column.
    Returns `{"status", "rows", "compared", "drifted", "drift_share", "threshold", "features": {...},
    "predictions": {...}}`; each column result is `{"kind", "n", "missing", "psi", "ks" (numeric) or "chi2"
    (categorical), "js", "threshold", "status", "reference", "current"}` with display histograms on the same
    edges (numeric: `edges`, `counts`) or categories (categorical: `categories`, `counts`).
    """
    base = DEFAULT_THRESHOLDS | (thresholds or {})
    overrides = overrides or {}
    jobs = [("features", name, summary, current.get(name)) for name, summary in profile.get("features", {}).items()]
    jobs += [
        ("predictions", name, summary, (predictions or {}).get(name))
        for name, summary in profile.get("predictions", {}).items()
    ]

    def one(job):
        section, name, summary, values = job
        limits = base | overrides.get(name, {})
        return section, name, _column(summary, values, limits)

    # Numeric columns spend their time in np.sort, which releases the GIL: two at a time on two cores.
    if THREADS > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(THREADS) as pool:
            done = list(pool.map(one, jobs))
    else:
        done = [one(job) for job in jobs]
    report = {"features": {}, "predictions": {}}
    for section, name, result in done:
        report[section][name] = result
    features = report["features"].values()
    compared = [r for r in features if r["status"] != "missing"]
    drifted = sum(r["status"] == "drift" for r in compared)
    share = drifted / len(compared) if compared else 0.0
    every = [*features, *report["predictions"].values()]
    if (compared and share >= base["drift_share"]) or any(
        r["status"] == "drift" for r in report["predictions"].values()
    ):
        status = "drift"
    elif any(r["status"] != "ok" for r in every):
        status = "warning"
    else:
        status = "ok"
    rows = len(next(iter(current.values()))) if current else 0
    return {
        "status": status,
        "rows": rows,
        "compared": len(compared),
        "drifted": drifted,
        "drift_share": share,
        "threshold": base,
    } | report


def _column(summary: dict, values, limits: dict) -> dict:
    if values is None:
        return {"kind": summary["kind"], "status": "missing", "threshold": limits}
    values = np.asarray(values)
    if summary["kind"] == NUMERIC:
        result = _numeric(summary, values)
    elif summary["kind"] == CATEGORICAL:
        result = _categorical(summary, values)
    else:
        raise ValueError(f"profile column of unknown kind {summary['kind']!r}")
    result["threshold"] = limits
    result["status"] = _status(result, limits, reference_n=int(summary.get("n") or 0))
    return result


def _status(result: dict, limits: dict, reference_n: int | None = None) -> str:
    test = result.get("ks") or result.get("chi2")
    p_limit = limits.get("ks_p") if "ks" in result else limits.get("chi2_p")
    psi, js, p = result.get("psi"), result.get("js"), test.get("p_value") if test else None
    psi_limit, js_limit = limits.get("psi"), limits.get("js")
    # PSI and JS on deciles are noise on small samples, on either side: a 569-row reference's
    # deciles alone move JS by ~0.05 between two draws of the same data.
    smallest = min(result.get("n", 0), reference_n if reference_n is not None else result.get("n", 0))
    if smallest < (limits.get("min_rows") or 0):
        psi_limit = js_limit = None
    if (
        (p_limit is not None and p is not None and p < p_limit)
        or (psi_limit is not None and psi is not None and psi >= psi_limit)
        or (js_limit is not None and js is not None and js >= js_limit)
    ):
        return "drift"
    if (psi_limit is not None and psi is not None and psi >= psi_limit / 2) or (
        js_limit is not None and js is not None and js >= js_limit / 2
    ):
        return "warning"
    return "ok"


def _numeric(summary: dict, values: np.ndarray) -> dict:
    floats, _, _ = as_float(values)
    ordered = finite_sorted(floats)  # a sorted copy: the caller's column is left alone
    m = len(ordered)
    n = summary["n"]
    empty = {"psi": None, "ks": None, "js": None, "reference": summary.get("hist"), "current": None}
    out = {"kind": NUMERIC, "n": m, "missing": len(floats) - m}
    if m == 0 or n == 0 or not summary.get("grid"):
        return out | empty
    grid = unpack(summary["grid"]["values"]).astype(np.float64)
    ref_cum = np.cumsum(unpack(summary["grid"]["cells"]).astype(np.int64))[: len(grid)]
    ref_left = ref_cum - unpack(summary["grid"]["atoms"]).astype(np.int64)
    cur_cum = np.searchsorted(ordered, grid, side="right")
    cur_left = np.searchsorted(ordered, grid, side="left")
    statistic, bound = ks_from_grid(ref_cum / n, ref_left / n, cur_cum / m, cur_left / m)
    p_value = ks_p_value(statistic, n * m / (n + m))
    bins = np.asarray(summary["grid"]["deciles"], dtype=np.int64)
    ref_bins = np.diff(np.concatenate([[0], ref_cum[bins], [n]])) / n
    cur_bins = np.diff(np.concatenate([[0], cur_cum[bins], [m]])) / m
    hist = summary["hist"]
    index = np.asarray(hist["edge_index"], dtype=np.int64)
    return out | {
        "psi": psi(ref_bins, cur_bins),
        "ks": {"statistic": statistic, "p_value": p_value, "max_error": bound - statistic},
        "js": js_distance(ref_bins, cur_bins),
        "reference": {"edges": hist["edges"], "counts": hist["counts"]},
        "current": {"edges": hist["edges"], "counts": display_counts(cur_cum, m, index)},
    }


def ks_from_grid(ref: np.ndarray, ref_left: np.ndarray, cur: np.ndarray, cur_left: np.ndarray) -> tuple[float, float]:
    """(D at and just below the grid points, an upper bound of the exact D) from the two CDFs at the grid points.

    `ref`/`cur` are F(g_j), `ref_left`/`cur_left` the left limits F(g_j-).
    """
    lower = float(max(np.max(np.abs(ref - cur)), np.max(np.abs(ref_left - cur_left))))
    # In the open cell (g[j-1], g[j]) (and below g[0] / above g[-1]) each CDF lies between its value at g[j-1]
    # and its left limit at g[j], so the gap there is at most F_a(g[j]-) - F_b(g[j-1]).
    ref_hi = np.concatenate([ref_left, [1.0]])
    cur_hi = np.concatenate([cur_left, [1.0]])
    ref_lo = np.concatenate([[0.0], ref])
    cur_lo = np.concatenate([[0.0], cur])
    upper = float(max(np.max(ref_hi - cur_lo), np.max(cur_hi - ref_lo), lower))
    return lower, upper


def ks_p_value(statistic: float, effective_n: float) -> float:
    root = np.sqrt(effective_n)
    return float(special.kolmogorov((root + 0.12 + 0.11 / root) * statistic))


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    r = np.clip(reference, PSI_EPS, None)
    c = np.clip(current, PSI_EPS, None)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon distance, base 2 (0 = same, 1 = disjoint), as scipy.spatial.distance.jensenshannon."""
    p = p / p.sum()
    q = q / q.sum()
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log2(p / mid), 0.0)
        right = np.where(q > 0, q * np.log2(q / mid), 0.0)
    return float(np.sqrt(max(0.0, (left.sum() + right.sum()) / 2)))


def _categorical(summary: dict, values: np.ndarray) -> dict:
    counter, missing = count_categories(values)
    m = sum(counter.values())
    out = {"kind": CATEGORICAL, "n": m, "missing": missing}
    labels = [label for label, _ in summary["top"]]
    ref = [count for _, count in summary["top"]]
    cur = [counter.get(label, 0) for label in labels]
    unseen = m - sum(cur)
    new_labels = sorted(set(counter) - set(labels), key=lambda k: -counter[k])
    if summary["other"] or unseen == 0:
        ref += [summary["other"]]
        cur += [unseen]
        cells = [*labels, "other"]
        new = 0
    else:
        ref += [0, 0]
        cur += [0, unseen]
        cells = [*labels, "other", "new"]
        new = unseen
    ref_counts = np.asarray(ref, dtype=np.float64)
    cur_counts = np.asarray(cur, dtype=np.float64)
    reference = {"categories": cells, "counts": [int(c) for c in ref]}
    current = {"categories": cells, "counts": [int(c) for c in cur], "new_examples": new_labels[:5] if new else []}
    if m == 0 or summary["n"] == 0:
        return out | {"psi": None, "chi2": None, "js": None, "reference": reference, "current": current}
    keep = (ref_counts + cur_counts) > 0
    table = np.vstack([ref_counts[keep], cur_counts[keep]])
    if table.shape[1] < 2:
        chi2 = {"statistic": 0.0, "p_value": 1.0, "dof": 0}
    else:
        res = stats.chi2_contingency(table, correction=False)
        chi2 = {"statistic": float(res.statistic), "p_value": float(res.pvalue), "dof": int(res.dof)}
    p, q = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
    return out | {
        "new": new,
        "psi": psi(p, q),
        "chi2": chi2,
        "js": js_distance(p, q),
        "reference": reference,
        "current": current,
    }
