"""Constrained search for many devices at once: ``search(predictor, objective=, budget_ms=)``."""

from __future__ import annotations

import math
import numbers
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from edgeperf.errors import InvalidParameterError, NotFittedError, UnknownDeviceError

__all__ = ["search", "Design", "SearchResult", "InfeasibleBudgetWarning", "LatencyBound",
           "DEFAULT_MARGIN", "DEFAULT_CONFIDENCE", "DEFAULT_TOLERANCE", "resolve_tolerance", "resolve_measured"]

#: Quantile of the predicted latency kept within the budget when the predictor has
#: ``predict_quantile`` (contract C1), alone: no floor below it. On ``benchmarks/optimize.py``
#: (hardware types held out, 20-measurement adaptation, 5 draws) 0.95 kept every design within
#: budget on phones and server CPUs; 0.9 saved 0.1-0.45 accuracy points but let 4 % of the
#: server-CPU designs (20 % at the 30 % budget quantile) overrun, too close to the 95 % goal.
DEFAULT_CONFIDENCE = 0.95
#: Without ``predict_quantile``: the prediction plus this fraction must fit the budget. Chosen on
#: ``benchmarks/optimize.py`` (leave-device-out, 20-measurement adaptation), see the README.
DEFAULT_MARGIN = 0.20
#: ``tolerance="auto"`` for accuracy objectives: designs within this share of the best feasible
#: accuracy (0.2 % of it, ~0.18 points at 90 %) are tied, and the one with the most slack under the
#: budget wins. Chosen on ``benchmarks/optimize.py`` (phones and server CPUs held out) with the
#: quantile-alone bound: 0.002 kept 100 % of designs within budget on both (0 and 0.001: 92-99 %),
#: and each doubling costs ~0.1-0.15 points of mean regret. Other objectives (proxies, MACs: no
#: natural scale, not measured) default to 0.
DEFAULT_TOLERANCE = 0.002
#: The metric whose adaptation measurements ``measured="auto"`` checks against latency budgets.
LATENCY_METRIC = "latency_ms"
#: Evaluations of a non-exhaustive search: cheap objectives (tables, MACs) vs zero-cost proxies.
DEFAULT_EVALUATIONS = {True: 3000, False: 300}


class InfeasibleBudgetWarning(UserWarning):
    """No design was found within a device's budget; its fastest design is returned instead."""


@dataclass(frozen=True)
class Design:
    """One device's design: the architecture, its predicted cost and objective."""

    device: str
    budget_ms: float
    arch: str
    latency_ms: float  # predicted (point) latency; the measured one for an arch given in ``measured``
    latency_bound_ms: float  # what was kept within the budget (a quantile, prediction + margin, or measured)
    objective: float
    feasible: bool  # False: nothing fitted the budget and this is the fastest design found
    energy_mj: float | None = None

    def __repr__(self) -> str:
        fits = "fits" if self.feasible else "NOTHING FITS, fastest design"
        return (f"Design({self.device}: {self.latency_ms:.4g} ms (bound {self.latency_bound_ms:.4g}) of "
                f"{self.budget_ms:.4g} ms budget, {fits}, objective {self.objective:.4g}, {self.arch})")


@dataclass
class SearchResult:
    """Designs per device (``result[device]``), optionally Pareto fronts, and run statistics."""

    designs: dict[str, Design]
    objective: str
    optimizer: str
    n_evaluated: int
    seconds: float
    bound: str
    pareto: dict[str, list[Design]] | None = None
    extra: dict = field(default_factory=dict)

    def __getitem__(self, device: str) -> Design:
        if device not in self.designs:
            raise UnknownDeviceError(device, self.designs, hint="This search did not cover it.")
        return self.designs[device]

    def __iter__(self):
        return iter(self.designs.values())

    def __len__(self) -> int:
        return len(self.designs)

    def __repr__(self) -> str:
        return (f"<SearchResult {len(self.designs)} devices, objective {self.objective}, {self.optimizer}, "
                f"{self.n_evaluated} evaluated in {self.seconds:.2f} s>")


class LatencyBound:
    """Turns a predictor into ``(point_ms, bound_ms)`` for many devices: the bound is the
    predictor's ``predict_quantile`` at ``confidence`` when it has one (contract C1), else
    the prediction times ``1 + margin``. ``margin="auto"``: that quantile alone with quantiles,
    else :data:`DEFAULT_MARGIN`; ``margin="quantile"``: the quantile (predictors with
    ``predict_quantile`` only); ``margin="cautious"``: the larger of the quantile and prediction x
    (1 + :data:`DEFAULT_MARGIN`); a number: prediction x (1 + margin), quantiles ignored.

    ``measured`` (from :func:`resolve_measured`): architectures whose latency on a device is
    known; their point and bound are that latency, with no margin (nothing is uncertain).
    """

    def __init__(self, predictor, devices, *, margin="auto", confidence=DEFAULT_CONFIDENCE, measured=None):
        self.predictor, self.devices = predictor, list(devices)
        if margin == "quantile" and not hasattr(predictor, "predict_quantile"):
            raise InvalidParameterError(
                f"margin='quantile' needs a predictor with predict_quantile; {type(predictor).__name__} has none; "
                "pass margin='auto' or a fraction such as 0.2")
        self.use_quantile = margin in _QUANTILE_MARGINS and hasattr(predictor, "predict_quantile")
        if margin in _QUANTILE_MARGINS:
            # With quantiles the search keeps the calibrated quantile alone: the "+20 %" floor it
            # once had cost accuracy on every held-out hardware type for no gain in designs within
            # budget; "cautious" keeps the floor (the designer's default: its decoded designs
            # carry the network's error too) (benchmarks/optimize.py, README).
            margin = DEFAULT_MARGIN if margin == "cautious" or not self.use_quantile else 0.0
        if isinstance(margin, bool) or not isinstance(margin, numbers.Real) or not 0 <= margin < 10:
            raise InvalidParameterError(f"expected margin='auto', 'quantile', 'cautious' or a fraction in [0, 10), "
                                        f"got {margin!r}")
        if isinstance(confidence, bool) or not isinstance(confidence, numbers.Real) or not 0.5 <= confidence < 1:
            raise InvalidParameterError(f"expected confidence in [0.5, 1), got {confidence!r}")
        self.margin, self.confidence = float(margin), float(confidence)
        self.measured = {d: m for d, m in (measured or {}).items() if d in set(self.devices) and m}

    def describe(self) -> str:
        known = f", {sum(map(len, self.measured.values()))} measured archs exact" if self.measured else ""
        if self.use_quantile and not self.margin:
            return f"predicted {self.confidence:.0%} quantile within the budget{known}"
        if self.use_quantile:
            return f"predicted {self.confidence:.0%} quantile and prediction + {self.margin:.0%} within the budget{known}"
        return f"prediction + {self.margin:.0%} margin within the budget{known}"

    def __call__(self, archs) -> tuple[np.ndarray, np.ndarray]:
        p = self.predictor
        point = np.vstack([np.asarray(p.predict(archs, device=d), dtype=np.float64) for d in self.devices])
        if self.use_quantile:
            bound = np.vstack([np.asarray(p.predict_quantile(archs, device=d, q=self.confidence), dtype=np.float64)
                               for d in self.devices])
            bound = np.maximum(bound, point * (1.0 + self.margin))
        else:
            bound = point * (1.0 + self.margin)
        for j, d in enumerate(self.devices):
            known = self.measured.get(d)
            if known:
                hits = [(i, known[a]) for i, a in enumerate(archs) if a in known]
                if hits:
                    idx, values = np.array([i for i, _ in hits]), np.array([v for _, v in hits])
                    point[j, idx] = bound[j, idx] = values
        return point, bound


#: Margins resolved from the predictor's quantiles (see :class:`LatencyBound`).
_QUANTILE_MARGINS = ("auto", "quantile", "cautious")


def resolve_measured(predictor, space, measured) -> dict[str, dict[str, float]]:
    """``{device: {arch: latency_ms}}`` checked: devices the predictor knows, architectures of
    its space (canonical strings), latencies finite and > 0. ``None`` -> ``{}``; ``"auto"``: the
    measurements each adapted device was adapted from (``predictor.adapt_measurements_``, a
    latency predictor's only)."""
    if measured is None:
        return {}
    if isinstance(measured, str) and measured == "auto":
        if getattr(predictor, "metric_", None) != LATENCY_METRIC:
            return {}
        return {d: dict(m) for d, m in getattr(predictor, "adapt_measurements_", {}).items() if m}
    if not isinstance(measured, dict):
        raise InvalidParameterError(
            f"expected measured as 'auto', None or {{device: {{arch: latency_ms}}}}, got {type(measured).__name__}")
    known = set(predictor.devices_)
    out = {}
    for device, values in measured.items():
        if device not in known:
            raise UnknownDeviceError(
                device, predictor.devices_,
                hint="measured= names it but the predictor does not know it: adapt the predictor to it first, "
                     "or drop it from measured.")
        if not hasattr(values, "items"):
            raise InvalidParameterError(
                f"expected measured[{device!r}] as {{arch: latency_ms}}, got {type(values).__name__}")
        archs = list(values.keys())
        canonical = space.validate(archs)
        checked = {}
        for arch, key in zip(archs, canonical):
            v = values[arch]
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
                raise InvalidParameterError(
                    f"expected measured latency_ms > 0 for {arch!r} on device {device!r}, got {v!r}")
            checked[key] = float(v)
        out[device] = checked
    return out


def resolve_tolerance(tolerance, objective) -> float:
    """``"auto"`` -> :data:`DEFAULT_TOLERANCE` for accuracy objectives, else 0; or a share in [0, 1)."""
    if tolerance == "auto":
        return DEFAULT_TOLERANCE if objective.kind == "accuracy" else 0.0
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or not 0 <= tolerance < 1:
        raise InvalidParameterError(f"expected tolerance='auto' or a share of the best score in [0, 1), got {tolerance!r}")
    return float(tolerance)


def _per_device(value, devices, what: str, unit: str) -> np.ndarray:
    if isinstance(value, dict):
        missing = [d for d in devices if d not in value]
        if missing:
            raise InvalidParameterError(f"{what} has no entry for device(s) {missing}; give one per device")
        values = [value[d] for d in devices]
    else:
        values = [value] * len(devices)
    for d, v in zip(devices, values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or v <= 0:
            raise InvalidParameterError(f"expected {what} > 0 in {unit} for device {d!r}, got {v!r}")
    return np.asarray(values, dtype=np.float64)


def check_fitted(predictor) -> None:
    if not hasattr(predictor, "devices_") or not hasattr(predictor, "space_"):
        raise NotFittedError(f"expected a fitted predictor, got an unfitted {type(predictor).__name__}; call fit first")


def resolve_devices(predictor, devices, budget) -> list[str]:
    """The devices of a search: given, or the budget dict's keys, or all the predictor knows."""
    if devices is None:
        devices = list(budget) if isinstance(budget, dict) else list(predictor.devices_)
    elif isinstance(devices, str):
        devices = [devices]
    devices = list(dict.fromkeys(devices))
    if not devices:
        raise InvalidParameterError("expected at least one device to design for")
    known = set(predictor.devices_)
    for d in devices:
        if d not in known:
            raise UnknownDeviceError(
                d, predictor.devices_,
                hint="Adapt the predictor to it first: predictor.adapt(device, archs=, values=) from ~20 measurements.",
            )
    return devices


def search(
    predictor,
    *,
    objective,
    budget_ms,
    devices=None,
    pareto: bool = False,
    optimizer: str = "auto",
    n_evaluations: int | None = None,
    margin="auto",
    confidence: float = DEFAULT_CONFIDENCE,
    tolerance="auto",
    energy_predictor=None,
    energy_budget_mj=None,
    candidates=None,
    measured="auto",
    seed: int = 0,
) -> SearchResult:
    """The best design per device under a latency (and optionally energy) budget.

    Parameters
    ----------
    predictor : a fitted latency predictor (``JointPredictor``, ``PerDevicePredictor``).
    objective : an :class:`~edgeperf.optimize.objectives.Objective`, a spec string
        (``nb201-cifar10``, ``accuracy:FILE``, ``proxy:naswot``, ``macs``) or a mapping
        arch -> accuracy.
    budget_ms : one budget for every device, or ``{device: budget}``.
    devices : devices to design for (default: the budget dict's keys, or all of the predictor's).
    pareto : also return each device's Pareto front (latency bound vs objective) of the archive.
    optimizer : ``auto`` (exhaustive on a finite space with a cheap objective, else
        ``evolution``), or a name of :func:`edgeperf.optimize.optimizers.names`.
    n_evaluations : architectures to evaluate (ignored by the exhaustive search).
    margin, confidence : see :class:`LatencyBound`.
    tolerance : designs whose score is within this share of the best feasible score's size count
        as tied with it, and the tied design with the smallest latency bound is chosen (risk-aware:
        more slack for a negligible loss). ``"auto"``: :data:`DEFAULT_TOLERANCE` for accuracy
        objectives, 0 for proxies and MACs.
    energy_predictor, energy_budget_mj : a predictor of ``energy_mj`` and its budget(s); the
        energy bound uses the same margin rule as latency.
    candidates : search only these architectures (exactly, in one pass), e.g. a pool that was
        measured or trained; ``optimizer`` and ``n_evaluations`` are then ignored.
    measured : ``{device: {arch: latency_ms}}`` of architectures already measured on a device:
        their latency is known, so they are checked against the budget as measured, without a
        margin, and a measured arch that fits is always admissible. A non-exhaustive search also
        evaluates them. ``"auto"`` (default): the measurements each adapted device was adapted
        from; ``None``: none.
    seed : seeds the optimizer.

    Nothing within a device's budget: an :class:`InfeasibleBudgetWarning` says so and that
    device's design is the fastest one found (``design.feasible`` is False).
    """
    from edgeperf import spaces
    from edgeperf.optimize import objectives, optimizers

    started = time.perf_counter()
    check_fitted(predictor)
    space = spaces.get(predictor.space_)
    objective = objectives.make(objective)
    objective.check_space(space)
    devices = resolve_devices(predictor, devices, budget_ms)
    budgets = _per_device(budget_ms, devices, "budget_ms", "ms")
    measured = resolve_measured(predictor, space, measured)
    bound = LatencyBound(predictor, devices, margin=margin, confidence=confidence, measured=measured)

    extra = energy = None
    if (energy_predictor is None) != (energy_budget_mj is None):
        raise InvalidParameterError("expected both energy_predictor and energy_budget_mj, or neither")
    if energy_predictor is not None:
        if getattr(energy_predictor, "metric_", None) != "energy_mj" or energy_predictor.space_ != space.name:
            raise InvalidParameterError(
                f"expected an energy_mj predictor of space {space.name!r}, got metric "
                f"{getattr(energy_predictor, 'metric_', None)!r} of space {getattr(energy_predictor, 'space_', None)!r}"
            )
        resolve_devices(energy_predictor, devices, None)
        energy_budgets = _per_device(energy_budget_mj, devices, "energy_budget_mj", "mJ")
        energy_bound = LatencyBound(energy_predictor, devices, margin=margin, confidence=confidence)
        energy = lambda archs: energy_bound(archs)[0]  # noqa: E731
        extra = lambda archs: energy_bound(archs)[1] <= energy_budgets[:, None]  # noqa: E731

    if candidates is not None:
        candidates = space.validate(candidates)
        if not candidates:
            raise InvalidParameterError("expected at least one candidate architecture, got none")
        optimizer = "candidates"
    elif optimizer == "auto":
        exhaustive = optimizers.get("exhaustive")
        optimizer = "exhaustive" if objective.cheap and exhaustive.supports(space) else "evolution"
    opt = None if candidates is not None else optimizers.get(optimizer)
    if opt is not None and not opt.supports(space):
        raise InvalidParameterError(f"optimizer {optimizer!r} cannot search space {space.name!r} (too large)")
    if n_evaluations is None:
        n_evaluations = DEFAULT_EVALUATIONS[objective.cheap]
    if isinstance(n_evaluations, bool) or not isinstance(n_evaluations, int) or n_evaluations < 1:
        raise InvalidParameterError(f"expected n_evaluations >= 1, got {n_evaluations!r}")

    problem = optimizers.Problem(
        space=space, devices=devices, budgets_ms=budgets,
        score=lambda archs: objective.score(archs, space=space),
        latency_bound=bound, extra_constraints=extra, energy=energy,
        tolerance=resolve_tolerance(tolerance, objective),
    )
    if opt is None:
        problem.evaluate(candidates)
    else:
        opt.run(problem, n_evaluations=n_evaluations, seed=seed)
        known = [a for d in devices for a in measured.get(d, ())]
        if known and optimizer != "exhaustive":  # the exhaustive search has seen them already
            problem.evaluate(list(dict.fromkeys(known)))
    designs = designs_from(problem)
    fronts = pareto_fronts(problem) if pareto else None
    for d in designs.values():
        if not d.feasible:
            warnings.warn(InfeasibleBudgetWarning(
                f"no design found within the budget of {d.budget_ms:.4g} ms on {d.device} "
                f"({bound.describe()}); returning the fastest design found, {d.latency_bound_ms:.4g} ms"
            ), stacklevel=2)
    return SearchResult(
        designs=designs, objective=objective.describe(), optimizer=optimizer, n_evaluated=problem.n_evaluated,
        seconds=time.perf_counter() - started, bound=bound.describe(), pareto=fronts,
    )


def designs_from(problem) -> dict[str, Design]:
    """Each device's design from a problem's archive."""
    scores, point, bound, _, energy = problem.arrays()
    picks, feasible = problem.best()
    out = {}
    for j, dev in enumerate(problem.devices):
        i = int(picks[j])
        out[dev] = Design(
            device=dev, budget_ms=float(problem.budgets_ms[j]), arch=problem.archs[i],
            latency_ms=float(point[j, i]), latency_bound_ms=float(bound[j, i]), objective=float(scores[i]),
            feasible=bool(feasible[j]), energy_mj=None if energy is None else float(energy[j, i]),
        )
    return out


def pareto_fronts(problem) -> dict[str, list[Design]]:
    """Per device, the designs no other design beats on both latency bound and objective."""
    scores, point, bound, ok_all, energy = problem.arrays()
    out = {}
    for j, dev in enumerate(problem.devices):
        order = np.lexsort((-scores, bound[j]))  # by latency, ties: better score first
        running = np.maximum.accumulate(scores[order])
        keep = order[np.r_[True, running[1:] > running[:-1]]]
        out[dev] = [
            Design(device=dev, budget_ms=float(problem.budgets_ms[j]), arch=problem.archs[i],
                   latency_ms=float(point[j, i]), latency_bound_ms=float(bound[j, i]), objective=float(scores[i]),
                   feasible=bool(ok_all[j, i]), energy_mj=None if energy is None else float(energy[j, i]))
            for i in keep
        ]
    return out
