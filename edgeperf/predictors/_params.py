"""Checks of predictor settings: every bad value raises :class:`InvalidParameterError` in ``fit``."""

from __future__ import annotations

import numbers

import numpy as np

from edgeperf.errors import InvalidParameterError

__all__ = ["check_common_params", "check_number", "check_progress", "Progress"]


def check_number(name: str, value, *, low=None, high=None, integer=False, low_open=False, owner="") -> None:
    """InvalidParameterError unless ``value`` is a real number (an int if ``integer``) in range."""
    kind = numbers.Integral if integer else numbers.Real
    where = f"{owner}: " if owner else ""
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(float(value)):
        raise InvalidParameterError(
            f"{where}{name} must be {'an integer' if integer else 'a finite number'}, got {value!r:.60} "
            f"({type(value).__name__})"
        )
    if low is not None and (value <= low if low_open else value < low):
        raise InvalidParameterError(f"{where}{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise InvalidParameterError(f"{where}{name} must be <= {high}, got {value!r}")


def check_common_params(est) -> None:
    """The settings every high-level predictor shares (model, encoding, metric, model_params, random_state)."""
    from edgeperf.predictors._regressors import REGRESSOR_NAMES

    owner = type(est).__name__
    model = est.model
    if isinstance(model, str):
        if model not in REGRESSOR_NAMES:
            raise InvalidParameterError(f"{owner}: unknown model {model!r}; expected one of {sorted(REGRESSOR_NAMES)} "
                                        "or a scikit-learn regressor")
    elif not (hasattr(model, "fit") and hasattr(model, "predict")):
        raise InvalidParameterError(f"{owner}: model must be a name or a regressor with fit/predict, got {model!r:.60}")
    if est.encoding is not None and not isinstance(est.encoding, str):
        raise InvalidParameterError(f"{owner}: encoding must be a name or None, got {est.encoding!r:.60}")
    if not isinstance(est.metric, str) or not est.metric:
        raise InvalidParameterError(f"{owner}: metric must be a metric name such as 'latency_ms', got {est.metric!r:.60}")
    mp = est.model_params
    if mp is not None:
        if not isinstance(mp, dict) or not all(isinstance(k, str) for k in mp):
            raise InvalidParameterError(
                f"{owner}: model_params must be a dict of keyword arguments, got {type(mp).__name__}"
            )
        cls = REGRESSOR_NAMES.get(model) if isinstance(model, str) else None
        if cls is not None:
            known = set(cls().get_params()) - {"random_state"}
            unknown = sorted(set(mp) - known)
            if unknown:
                raise InvalidParameterError(
                    f"{owner}: model_params {unknown} are not settings of model {model!r}; expected some of {sorted(known)}"
                )
    rs = est.random_state
    if not (rs is None or isinstance(rs, np.random.RandomState)
            or (isinstance(rs, numbers.Integral) and not isinstance(rs, bool) and 0 <= rs < 2**32)):
        raise InvalidParameterError(f"{owner}: random_state must be None, an int in [0, 2**32) or a RandomState, got {rs!r:.60}")


class Progress:
    """Reports ``progress(done, total, stage)`` (C3) to an optional user callback."""

    def __init__(self, callback, total: int):
        self.callback, self.total, self.done = callback, int(total), 0

    def step(self, stage: str, n: int = 1) -> None:
        if n <= 0:
            return
        self.done = min(self.total, self.done + n)
        if self.callback is not None:
            self.callback(self.done, self.total, stage)


def check_progress(progress) -> None:
    if progress is not None and not callable(progress):
        raise InvalidParameterError(
            f"progress must be a callable progress(done, total, stage) or None, got {type(progress).__name__}"
        )
