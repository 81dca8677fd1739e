"""What every adaptation strategy is: the base class, the data it fits on, the host it asks.

A strategy turns a few measurements of an unseen device into a predictor of that
device's log-metric. It never sees the joint model directly: the
:class:`AdaptHost` it is given answers what strategies need (the training devices'
log predictions, the joint model fed a new device embedding, the Bayes prior, the
reference architectures), so a strategy can be tested and saved on its own.

Persisted state: :meth:`AdaptStrategy.get_state` returns JSON-ready metadata and
numpy arrays; :meth:`AdaptStrategy.set_state` checks them (schema version, keys,
shapes, finiteness) and raises :class:`ModelFileError` on anything else. The
schema version is the model-file format version: a change of any strategy's state
is a new model-file format.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Protocol, Sequence

import numpy as np

from edgeperf.errors import AdaptationError, ModelFileError

__all__ = ["AdaptStrategy", "AdaptData", "AdaptHost", "AdditiveMs", "AffineForm", "STATE_VERSION", "MIN_MEASUREMENTS"]

#: Schema version of every strategy's persisted state (= the model-file format version).
STATE_VERSION = 2
#: Fewer distinct architectures than this cannot fit even an affine map with a check left over.
MIN_MEASUREMENTS = 3


class AdaptHost(Protocol):
    """What a fitted joint model offers to strategies (implemented by ``JointPredictor``)."""

    #: Names of the basis columns: the training devices, then analytic pseudo-devices
    #: (``@macs``, ``@params``, ``@mem_bytes``) where the encoding allows computing them.
    basis_names: tuple[str, ...]
    #: The training devices (a prefix of ``basis_names``).
    train_devices: tuple[str, ...]
    #: Canonical reference architectures of the device signature.
    reference_archs: tuple[str, ...]
    #: Number of features of an encoded architecture row.
    n_features: int
    #: Name of the search space.
    space: str

    def basis_log(self, X: np.ndarray, names: Sequence[str]) -> np.ndarray:
        """(n, len(names)) log predictions of the named basis columns for encoded rows ``X``."""

    def joint_log(self, X: np.ndarray, signature: np.ndarray, static: np.ndarray) -> np.ndarray:
        """The joint model's log prediction for a device with this signature and static features."""

    def encode(self, archs: Sequence[str]) -> np.ndarray:
        """Encoded float32 rows of canonical architecture strings."""

    def bayes_prior(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(mean, covariance, noise variance) of the linear-in-encoding prior over devices."""


@dataclass(frozen=True)
class AdaptData:
    """The target's measurements, one row per distinct architecture.

    ``basis_log`` holds the host's ``basis_log(X, host.basis_names)``, computed once so that
    leave-one-out refits and several strategies share it.
    """

    archs: tuple[str, ...]
    X: np.ndarray
    logy: np.ndarray
    basis_log: np.ndarray
    #: Static device features in the host's field order (NaN where unknown).
    static: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self):
        n = len(self.archs)
        if self.X.shape[0] != n or self.logy.shape != (n,) or self.basis_log.shape[0] != n:
            raise AdaptationError(
                f"inconsistent adaptation data: {n} archs, X {self.X.shape}, logy {self.logy.shape}, "
                f"basis {self.basis_log.shape}"
            )
        if n < MIN_MEASUREMENTS:
            raise AdaptationError(f"expected at least {MIN_MEASUREMENTS} distinct architectures, got {n}")
        if not (np.isfinite(self.logy).all() and np.isfinite(self.basis_log).all()):
            raise AdaptationError("expected finite log values and basis predictions")

    def subset(self, rows) -> "AdaptData":
        rows = np.asarray(rows)
        return AdaptData(
            archs=tuple(np.asarray(self.archs, dtype=object)[rows]), X=self.X[rows], logy=self.logy[rows],
            basis_log=self.basis_log[rows], static=self.static,
        )

    def columns(self, host: AdaptHost, names: Sequence[str]) -> np.ndarray:
        """The basis columns ``names`` of the target rows."""
        where = {n: i for i, n in enumerate(host.basis_names)}
        return self.basis_log[:, [where[n] for n in names]]


@dataclass(frozen=True)
class AdditiveMs:
    """One additive device model inside a form: ``weight * log(max(t0_ms + ms(space, X), floor_ms))``,
    where ``ms(space, X)`` (``(n,)`` milliseconds of one-hot rows) is a sum of per-layer terms, so a
    host can tabulate it per decision (``analytic``, ``compact``)."""

    weight: float
    t0_ms: float
    floor_ms: float
    ms: Callable[[str, np.ndarray], np.ndarray]

    def scaled(self, w: float) -> "AdditiveMs":
        return AdditiveMs(w * self.weight, self.t0_ms, self.floor_ms, self.ms)


@dataclass(frozen=True)
class AffineForm:
    """``predict_log(host, X) = const + sum_k basis[k] * host.basis_log(X, [k]) + X @ encoding``
    ``+ sum_j additive[j].weight * log(additive[j] ms of X)`` (``encoding`` None: no term in the
    encoding; :class:`AdditiveMs`). A strategy of this form says so through
    :meth:`AdaptStrategy.affine_form`, so that a host can evaluate it by its own fastest route
    (one pass over every basis device at once, per-decision tables for the rest)."""

    const: float
    basis: dict = field(default_factory=dict)
    encoding: "np.ndarray | None" = None
    additive: "tuple[AdditiveMs, ...]" = ()

    def predict_log(self, host: "AdaptHost", X: np.ndarray, additive_ms=None) -> np.ndarray:
        """The form evaluated the plain way (what a host's own route must equal); ``additive_ms``:
        each additive model's milliseconds of ``X``, where the host has them by a faster route."""
        names = list(self.basis)
        out = np.full(X.shape[0], self.const)
        if names:
            out += host.basis_log(X, names) @ np.array([self.basis[n] for n in names])
        if self.encoding is not None:
            out += X.astype(np.float64) @ self.encoding
        if additive_ms is None:
            additive_ms = [a.ms(host.space, X) for a in self.additive]
        for a, ms in zip(self.additive, additive_ms):
            out += a.weight * np.log(np.maximum(a.t0_ms + ms, a.floor_ms))
        return out

    def scaled(self, w: float) -> "AffineForm":
        return AffineForm(w * self.const, {k: w * v for k, v in self.basis.items()},
                          None if self.encoding is None else w * self.encoding,
                          tuple(a.scaled(w) for a in self.additive))

    def __add__(self, other: "AffineForm") -> "AffineForm":
        basis = dict(self.basis)
        for k, v in other.basis.items():
            basis[k] = basis.get(k, 0.0) + v
        enc = self.encoding if other.encoding is None else (
            other.encoding if self.encoding is None else self.encoding + other.encoding)
        return AffineForm(self.const + other.const, basis, enc, self.additive + other.additive)


class AdaptStrategy(abc.ABC):
    """Base of every adaptation strategy; subclasses register with :func:`register`.

    Subclasses implement :meth:`_fit` (returns the learned state as a dict, assigns
    nothing), :meth:`predict_log` and :meth:`_state_arrays` / :meth:`_load_state`. The
    base class handles what every strategy shares: assigning the state only once the
    fit succeeded, the leave-one-out residuals (for the adapt report and the spread
    behind ``return_std``) and the versioned state.
    """

    #: Registry name, set by :func:`register`.
    name: ClassVar[str] = ""
    #: Learned attributes that are plain floats (persisted as JSON).
    _float_state: ClassVar[tuple[str, ...]] = ()
    #: Learned attributes that are 1-D float arrays (persisted as .npy; lengths checked by
    #: ``_check_state`` / ``check_host``).
    _array_state: ClassVar[tuple[str, ...]] = ()
    #: Learned attributes that are lists of strings (persisted as JSON).
    _names_state: ClassVar[tuple[str, ...]] = ()

    # ---- fit -----------------------------------------------------------------------------------
    def fit(self, host: AdaptHost, data: AdaptData) -> "AdaptStrategy":
        """Fit on ``data``; also computes leave-one-out log residuals. Returns self."""
        if not isinstance(data, AdaptData):
            raise AdaptationError(f"expected AdaptData, got {type(data).__name__}")
        state = self._fit(host, data)
        loo = self._leave_one_out(host, data)
        for k, v in state.items():
            setattr(self, k, v)
        self.loo_log_residuals_ = loo
        self.n_fit_ = len(data.archs)
        return self

    @abc.abstractmethod
    def _fit(self, host: AdaptHost, data: AdaptData) -> dict:
        """The learned state (attribute name -> value) for ``data``; must not assign it."""

    def _leave_one_out(self, host: AdaptHost, data: AdaptData) -> np.ndarray:
        """Log residual of each measurement predicted by a fit on the others."""
        n = len(data.archs)
        out = np.empty(n)
        for i in range(n):
            rows = np.delete(np.arange(n), i)
            if n - 1 < MIN_MEASUREMENTS:  # too few to refit: the in-sample residual, optimistic
                rows = np.arange(n)
            other = type(self)()
            for k, v in other._fit(host, data.subset(rows)).items():
                setattr(other, k, v)
            out[i] = data.logy[i] - other.predict_log(host, data.X[i : i + 1])[0]
        return out

    # ---- prediction ----------------------------------------------------------------------------
    @abc.abstractmethod
    def predict_log(self, host: AdaptHost, X: np.ndarray) -> np.ndarray:
        """Natural log of the metric for encoded rows ``X`` (shape ``(n,)``)."""

    def affine_form(self) -> "AffineForm | None":
        """The fitted ``predict_log`` as an :class:`AffineForm`, or None where it has no such form
        (the default; hosts then call :meth:`predict_log`)."""
        return None

    def log_std(self, n: int) -> np.ndarray:
        """Uncalibrated predictive std in log space of ``n`` rows: the leave-one-out RMS.

        The joint predictor multiplies it by a scale factor calibrated leave-device-out.
        """
        self._check_fitted()
        rms = float(np.sqrt(np.mean(self.loo_log_residuals_**2)))
        return np.full(n, rms)

    def notes(self) -> tuple[str, ...]:
        """Warnings for the adapt report (what makes this fit less reliable); none by default."""
        return ()

    def _check_fitted(self) -> None:
        if not hasattr(self, "loo_log_residuals_"):
            from edgeperf.errors import NotFittedError

            raise NotFittedError(f"this {type(self).__name__} strategy is not fitted; call fit(host, data) first")

    # ---- state ---------------------------------------------------------------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(JSON-ready metadata, arrays) of the fitted strategy."""
        self._check_fitted()
        meta = {"strategy": self.name, "state_version": STATE_VERSION, "n_fit": int(self.n_fit_)}
        meta.update({k: float(getattr(self, k)) for k in self._float_state})
        meta.update({k: list(getattr(self, k)) for k in self._names_state})
        arrays = {k: np.asarray(getattr(self, k), dtype=np.float64) for k in self._array_state}
        arrays["loo_log_residuals_"] = np.asarray(self.loo_log_residuals_, dtype=np.float64)
        return meta, arrays

    def set_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> "AdaptStrategy":
        """Restore what :meth:`get_state` returned; :class:`ModelFileError` if it does not fit."""
        if not isinstance(meta, dict):
            raise ModelFileError(f"strategy state: expected a JSON object, got {type(meta).__name__}")
        if meta.get("strategy") != self.name:
            raise ModelFileError(f"strategy state: expected strategy {self.name!r}, got {meta.get('strategy')!r}")
        if meta.get("state_version") != STATE_VERSION:
            raise ModelFileError(
                f"strategy {self.name!r}: expected state version {STATE_VERSION}, got {meta.get('state_version')!r}; "
                "re-run adapt() on the device's measurements with this edgeperf version"
            )
        state = {}
        try:
            for k in self._float_state:
                v = meta[k]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                    raise ModelFileError(f"strategy {self.name!r}: {k} must be a finite number, got {v!r}")
                state[k] = float(v)
            for k in self._names_state:
                v = meta[k]
                if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
                    raise ModelFileError(f"strategy {self.name!r}: {k} must be a list of strings, got {v!r:.80}")
                state[k] = list(v)
            for k in (*self._array_state, "loo_log_residuals_"):
                a = np.asarray(arrays[k])
                if a.dtype.kind != "f" or a.ndim != 1 or not np.isfinite(a).all():
                    raise ModelFileError(
                        f"strategy {self.name!r}: array {k} must be 1-D finite floats, got {a.dtype} {a.shape}"
                    )
                state[k] = a.astype(np.float64)
            n_fit = meta["n_fit"]
        except KeyError as exc:
            raise ModelFileError(f"strategy {self.name!r}: state lacks {exc}; the file is incomplete") from None
        if isinstance(n_fit, bool) or not isinstance(n_fit, int) or n_fit != state["loo_log_residuals_"].size:
            raise ModelFileError(f"strategy {self.name!r}: n_fit {n_fit!r} disagrees with its residuals")
        self._check_state(state)
        for k, v in state.items():
            setattr(self, k, v)
        self.n_fit_ = n_fit
        return self

    def _check_state(self, state: dict) -> None:
        """Cross-field consistency of a loaded state (raise ModelFileError); override as needed."""

    def check_host(self, host: AdaptHost) -> None:
        """Raise ModelFileError when the fitted state does not fit ``host`` (e.g. basis names)."""


def onehot_space(host: AdaptHost, name: str) -> str:
    """The host's space, for a strategy that decodes per-layer costs from one-hot rows
    (:class:`AdaptationError` when the joint model has another encoding)."""
    if "@macs" not in host.basis_names:
        raise AdaptationError(f"strategy {name!r} needs the one-hot encoding (analytic costs per layer); "
                              "fit the joint model with encoding='onehot' or pick another strategy")
    return host.space


def check_lengths(name: str, **pairs: tuple[int, int]) -> None:
    """ModelFileError unless each (got, expected) pair agrees."""
    for k, (got, want) in pairs.items():
        if got != want:
            raise ModelFileError(f"strategy {name!r}: {k} has {got} entries, expected {want}; the file is corrupted")
