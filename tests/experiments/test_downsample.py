import numpy as np
import pytest

from apps.experiments.downsample import downsample


@pytest.mark.parametrize("method", ["minmax", "lttb"])
def test_keeps_first_last_and_extremes(method):
    rng = np.random.default_rng(0)
    n = 100_000
    steps = np.arange(n, dtype=float)
    values = np.exp(-steps / 20000) + rng.normal(0, 0.01, n)
    values[31_337] = 9.0  # spike
    values[77_777] = -5.0  # dip
    values[500] = np.nan
    keep = downsample(steps, values, 1000, method)
    assert len(keep) <= 1000
    assert keep[0] == 0 and keep[-1] == n - 1
    assert 31_337 in keep and 77_777 in keep
    assert np.all(np.diff(keep) > 0)
    assert not np.isnan(values[keep]).any()


def test_short_series_untouched():
    steps = np.arange(10, dtype=float)
    assert downsample(steps, steps.copy(), 1000).tolist() == list(range(10))


def test_shape_is_preserved():
    steps = np.arange(50_000, dtype=float)
    values = np.sin(steps / 2000)
    keep = downsample(steps, values, 500, "minmax")
    # the downsampled curve stays within one bucket's variation of the original
    interp = np.interp(steps, steps[keep], values[keep])
    assert np.max(np.abs(interp - values)) < 0.1


def test_unknown_method():
    with pytest.raises(ValueError):
        downsample(np.arange(100.0), np.arange(100.0), 10, "magic")
