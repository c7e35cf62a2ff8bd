"""The rollups' sum-based Hájek estimate must equal the array-based one."""

import numpy as np
import pytest

from router_ops.stats.weighted import hajek_rate_from_sums, weighted_rate


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sums_agree_with_arrays(seed):
    rng = np.random.default_rng(seed)
    pi = rng.choice([0.02, 0.2, 0.8], size=400)
    y = (rng.random(400) < 0.2).astype(float)
    w = 1 / pi
    from_arrays = weighted_rate(y, pi)
    from_sums = hajek_rate_from_sums(
        n=400, sum_w=w.sum(), sum_w2=(w * w).sum(), sum_wy=(w * y).sum(), sum_w2y=(w * w * y).sum()
    )
    assert from_sums.estimate == pytest.approx(from_arrays.estimate, rel=1e-12)
    assert from_sums.variance == pytest.approx(from_arrays.variance, rel=1e-9)
    assert from_sums.low == pytest.approx(from_arrays.low, rel=1e-9)
    assert from_sums.high == pytest.approx(from_arrays.high, rel=1e-9)
    assert from_sums.n_eff == pytest.approx(from_arrays.n_eff, rel=1e-12)


def test_empty_sums_have_no_estimate():
    empty = hajek_rate_from_sums(n=0, sum_w=0, sum_w2=0, sum_wy=0, sum_w2y=0)
    assert empty.estimate is None and (empty.low, empty.high) == (0.0, 1.0)
