"""Validation metrics in plain NumPy (scikit-learn is not available on every worker)."""

from __future__ import annotations

import numpy as np


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred)) if len(y_true) else 0.0


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro F1 over labels present in either array (scikit-learn's default),
    with 0 for labels that have no predicted or true samples."""
    labels = np.union1d(y_true, y_pred)
    if labels.size == 0:
        return 0.0
    scores = []
    for label in labels:
        tp = np.sum((y_pred == label) & (y_true == label))
        fp = np.sum((y_pred == label) & (y_true != label))
        fn = np.sum((y_pred != label) & (y_true == label))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE/MAE over all outputs; R^2 averaged uniformly over output columns."""
    y_true = y_true.reshape(len(y_true), -1).astype(np.float64)
    y_pred = y_pred.reshape(len(y_pred), -1).astype(np.float64)
    err = y_pred - y_true
    ss_res = np.sum(err**2, axis=0)
    ss_tot = np.sum((y_true - y_true.mean(axis=0)) ** 2, axis=0)
    # Constant targets: define R^2 as 1 for a perfect fit, else 0 (as scikit-learn does).
    r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), 0.0)
    r2 = np.where((ss_tot == 0) & (ss_res == 0), 1.0, r2)
    return {
        "val_rmse": float(np.sqrt(np.mean(err**2))),
        "val_mae": float(np.mean(np.abs(err))),
        "val_r2": float(np.mean(r2)),
    }
