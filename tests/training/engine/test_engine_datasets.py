"""Vendored demo datasets are identical to scikit-learn's copies."""

from __future__ import annotations

import numpy as np
import pytest

from apps.training.engine.datasets import DATASETS, load_dataset


@pytest.mark.parametrize(
    ("name", "shape", "n_labels"),
    [
        ("digits", (1797, 64), 10),
        ("wine", (178, 13), 3),
        ("breast_cancer", (569, 30), 2),
        ("diabetes", (442, 10), None),
    ],
)
def test_shapes(name, shape, n_labels):
    ds = load_dataset(name)
    assert ds.X.shape == shape and len(ds.y) == shape[0]
    if n_labels:
        assert len(np.unique(ds.y)) == n_labels


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_matches_scikit_learn(name):
    sk = pytest.importorskip("sklearn.datasets")
    kwargs = {"scaled": False} if name == "diabetes" else {}
    expected = getattr(sk, f"load_{name}")(**kwargs)
    ds = load_dataset(name)
    np.testing.assert_array_equal(ds.X, expected.data)
    np.testing.assert_array_equal(ds.y, expected.target)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("mnist")
