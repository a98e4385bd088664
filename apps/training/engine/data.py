"""Dataset preparation: validation, seeded split, train-only standardisation, loaders."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from .datasets import load_dataset
from .models import InferenceModel
from .templates import Template

_MIN_STD = 1e-8


class DataError(ValueError):
    """The caller's arrays cannot be used with the chosen template."""


@dataclass
class PreparedData:
    task: str
    dataset: str
    x_train: np.ndarray  # standardised float32, shape (n, *input_shape)
    y_train: np.ndarray  # int64 class indices, or float32 standardised targets (n, k)
    x_val: np.ndarray
    y_val: np.ndarray
    x_val_raw: np.ndarray  # un-normalised float32 validation inputs (export parity)
    y_val_raw: np.ndarray  # class indices, or raw float32 targets (n, k)
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray | None
    y_std: np.ndarray | None
    input_shape: tuple[int, ...]
    n_outputs: int
    classes: list[Any] | None
    fingerprint: str

    def inference_model(self, core: torch.nn.Module) -> InferenceModel:
        """Wrap a trained core so it accepts raw features (and emits raw targets)."""
        return InferenceModel(
            core,
            torch.from_numpy(self.x_mean),
            torch.from_numpy(self.x_std),
            None if self.y_mean is None else torch.from_numpy(self.y_mean),
            None if self.y_std is None else torch.from_numpy(self.y_std),
        )

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.dataset,
            "n_train": int(len(self.x_train)),
            "n_val": int(len(self.x_val)),
            "input_shape": list(self.input_shape),
            "n_outputs": self.n_outputs,
            "classes": self.classes,
            "fingerprint": self.fingerprint,
        }


def prepare_data(
    template: Template,
    params: Mapping[str, Any],
    seed: int,
    X: np.ndarray | None = None,
    y: np.ndarray | None = None,
    dataset: str | None = None,
) -> PreparedData:
    """Load (or accept) arrays, split by `seed`, and fit normalisation on train only."""
    if (X is None) != (y is None):
        raise DataError("pass both X and y, or neither to use the template's demo dataset")
    if X is None:
        demo = load_dataset(dataset or template.default_dataset)
        name, X, y = demo.name, demo.X, demo.y
    else:
        name = dataset or "custom"
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 2 or len(X) != len(y):
        raise DataError(f"X must be 2-D with one row per label; got X {X.shape}, y {y.shape}")
    if len(X) < 2:
        raise DataError("need at least 2 samples")
    try:
        X = template.prepare_inputs(X.astype(np.float32))
    except (TypeError, ValueError) as exc:
        raise DataError(str(exc)) from exc
    if not np.all(np.isfinite(X)):
        raise DataError("X contains NaN or infinite values")

    classes: list[Any] | None = None
    if template.task == "classification":
        if y.ndim != 1:
            raise DataError("classification labels must be a 1-D array")
        uniques, y_idx = np.unique(y, return_inverse=True)
        if len(uniques) < 2:
            raise DataError("classification needs at least 2 distinct labels")
        classes = [u.item() if hasattr(u, "item") else u for u in uniques]
        targets = y_idx.astype(np.int64).reshape(-1)
        n_outputs = len(classes)
    else:
        targets = y.astype(np.float32).reshape(len(y), -1)
        if not np.all(np.isfinite(targets)):
            raise DataError("y contains NaN or infinite values")
        n_outputs = targets.shape[1]

    fingerprint = _fingerprint(X, targets, classes)
    n_val = max(1, int(round(len(X) * params["val_fraction"])))
    if len(X) - n_val < 1:
        raise DataError("not enough samples for a train/validation split")
    perm = np.random.default_rng(seed).permutation(len(X))
    train_idx, val_idx = perm[n_val:], perm[:n_val]

    x_tr, x_va = X[train_idx], X[val_idx]
    if template.per_feature_norm:
        x_mean, x_std = x_tr.mean(axis=0, keepdims=True), x_tr.std(axis=0, keepdims=True)
    else:
        shape = (1,) * X.ndim
        x_mean, x_std = x_tr.mean().reshape(shape), x_tr.std().reshape(shape)
    # Constant features (e.g. always-blank image corners) must not divide by zero.
    x_std = np.where(x_std < _MIN_STD, 1.0, x_std).astype(np.float32)
    x_mean = x_mean.astype(np.float32)

    y_tr, y_va = targets[train_idx], targets[val_idx]
    y_mean = y_std = None
    y_tr_model, y_va_model = y_tr, y_va
    if template.task == "regression":
        y_mean = y_tr.mean(axis=0, keepdims=True).astype(np.float32)
        y_std = y_tr.std(axis=0, keepdims=True)
        y_std = np.where(y_std < _MIN_STD, 1.0, y_std).astype(np.float32)
        y_tr_model, y_va_model = (y_tr - y_mean) / y_std, (y_va - y_mean) / y_std

    return PreparedData(
        task=template.task,
        dataset=name,
        x_train=((x_tr - x_mean) / x_std).astype(np.float32),
        y_train=y_tr_model,
        x_val=((x_va - x_mean) / x_std).astype(np.float32),
        y_val=y_va_model,
        x_val_raw=np.ascontiguousarray(x_va),
        y_val_raw=y_va,
        x_mean=x_mean,
        x_std=x_std,
        y_mean=y_mean,
        y_std=y_std,
        input_shape=tuple(int(d) for d in X.shape[1:]),
        n_outputs=int(n_outputs),
        classes=classes,
        fingerprint=fingerprint,
    )


def _fingerprint(X: np.ndarray, targets: np.ndarray, classes: list[Any] | None) -> str:
    """Stable digest of the training data, so a resume cannot silently switch datasets."""
    digest = hashlib.sha256()
    for arr in (X, targets):
        arr = np.ascontiguousarray(arr)
        digest.update(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
    digest.update(json.dumps(classes, default=str).encode())
    return digest.hexdigest()


def make_loader(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    sampler: Sampler[int] | None = None,
) -> DataLoader:
    """Shuffled single-process loader; shuffling comes from `generator` or `sampler`."""
    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=generator if sampler is None else None,
        num_workers=0,  # worker processes would add their own RNG streams
        drop_last=False,
    )
