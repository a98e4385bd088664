"""Built-in demo datasets.

These are byte-for-byte copies of the small datasets bundled with
scikit-learn (``sklearn/datasets/data``; UCI data, see ``demo_data/README.md``),
vendored so the engine runs offline on machines that have torch and numpy but
no scikit-learn (e.g. the GPU workers).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_DATA_DIR = Path(__file__).with_name("demo_data")


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray


def _open(name: str):
    return gzip.open(_DATA_DIR / name, "rt")


def _load_with_header(name: str) -> tuple[np.ndarray, np.ndarray]:
    # sklearn's CSV layout: a "n_samples,n_features,class names..." header row,
    # then rows of features followed by the integer target.
    with _open(name) as fh:
        data = np.loadtxt(fh, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1].astype(np.int64)


def load_digits() -> Dataset:
    """8x8 handwritten digits: X (1797, 64) pixel intensities 0..16, y 0..9."""
    with _open("digits.csv.gz") as fh:
        data = np.loadtxt(fh, delimiter=",")
    return Dataset("digits", data[:, :-1], data[:, -1].astype(np.int64))


def load_wine() -> Dataset:
    """Wine recognition: X (178, 13), y three cultivars."""
    X, y = _load_with_header("wine_data.csv.gz")
    return Dataset("wine", X, y)


def load_breast_cancer() -> Dataset:
    """Wisconsin breast cancer: X (569, 30), y 0 malignant / 1 benign."""
    X, y = _load_with_header("breast_cancer.csv.gz")
    return Dataset("breast_cancer", X, y)


def load_diabetes() -> Dataset:
    """Diabetes progression: X (442, 10) unscaled, y float disease progression."""
    with _open("diabetes_data_raw.csv.gz") as fh:
        X = np.loadtxt(fh)
    with _open("diabetes_target.csv.gz") as fh:
        y = np.loadtxt(fh)
    return Dataset("diabetes", X, y)


DATASETS: dict[str, Callable[[], Dataset]] = {
    "digits": load_digits,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
    "diabetes": load_diabetes,
}


def load_dataset(name: str) -> Dataset:
    try:
        loader = DATASETS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r} (available: {', '.join(DATASETS)})") from None
    return loader()
