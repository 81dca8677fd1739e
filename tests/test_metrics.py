import math

import numpy as np
import pytest
from scipy.stats import kendalltau, spearmanr

from edgeperf import metrics
from edgeperf.errors import DataValidationError


def test_error_metrics_by_hand():
    t, p = [100.0, 200.0, 50.0, 10.0], [104.0, 230.0, 50.0, 9.0]
    assert metrics.mape(t, p) == pytest.approx((4 + 15 + 0 + 10) / 4)
    assert metrics.rmse(t, p) == pytest.approx(math.sqrt((16 + 900 + 0 + 1) / 4))
    assert metrics.acc_5(t, p) == 0.5  # 4% and 0% only
    assert metrics.acc_10(t, p) == 0.75  # 10% counts as within
    assert metrics.accuracy_within(t, p, 0.2) == 1.0


def test_rank_metrics_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    t = rng.integers(1, 6, 200).astype(float)  # whole-ms phone values: many ties
    p = t + rng.normal(0, 1.0, 200)
    assert metrics.spearman(t, p) == pytest.approx(spearmanr(t, p).statistic)
    assert metrics.kendall(t, p) == pytest.approx(kendalltau(t, p).statistic)
    assert metrics.spearman(t, t) == pytest.approx(1.0)
    assert metrics.spearman(t, -t) == pytest.approx(-1.0)


def test_constant_series_rank_is_nan():
    assert math.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(metrics.kendall([1, 2, 3], [5, 5, 5]))


def test_top_k_overlap():
    t = [1, 2, 3, 4, 5, 6]
    assert metrics.top_k_overlap(t, [1, 2, 3, 4, 5, 6], 2) == 1.0
    assert metrics.top_k_overlap(t, [6, 5, 4, 3, 2, 1], 3) == 0.0
    assert metrics.top_k_overlap(t, [2, 1, 9, 8, 7, 6], 3) == pytest.approx(2 / 3)
    assert metrics.top_k_overlap(t, [6, 5, 4, 3, 2, 1], 2, largest=True) == 0.0
    with pytest.raises(DataValidationError):
        metrics.top_k_overlap(t, t, 0)


def test_summary_keys_and_bad_input():
    s = metrics.summary([1.0, 2.0, 3.0], [1.0, 2.1, 2.5])
    assert set(s) == {"n", *metrics.METRIC_NAMES}
    with pytest.raises(DataValidationError, match="same length"):
        metrics.mape([1, 2], [1])
    with pytest.raises(DataValidationError, match="finite"):
        metrics.rmse([1, np.nan], [1, 2])
    with pytest.raises(DataValidationError, match="> 0"):
        metrics.mape([0, 1], [1, 1])
    with pytest.raises(DataValidationError):
        metrics.mape([], [])
