"""Designs that include the precision: search each precision's (device, objective), keep the best.

A precision is a device of the predictor measured at that precision (e.g. this machine's ONNX
Runtime in fp32 and after int8 dynamic quantisation, ``OnnxRuntimeProfiler(quantize=
"int8-dynamic")``) together with the objective at that precision (``nb201-cifar10`` and its
post-training-quantised column ``nb201-cifar10-int8``). Each precision is searched exactly as
:func:`edgeperf.optimize.search` does; the design is the precision's design with the best
objective among those that fit (near-ties within the search's tolerance: the most slack).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from edgeperf.errors import InvalidParameterError
from edgeperf.optimize._search import Design, InfeasibleBudgetWarning, resolve_tolerance, search

__all__ = ["PrecisionDesign", "search_precisions"]


@dataclass(frozen=True)
class PrecisionDesign:
    """The chosen precision, its design, and every precision's design (for comparison)."""

    precision: str
    design: Design
    candidates: dict[str, Design]

    def __repr__(self) -> str:
        return f"PrecisionDesign({self.precision}: {self.design!r})"


def search_precisions(predictor, *, variants: dict, budget_ms: float, tolerance="auto", **search_kwargs) -> PrecisionDesign:
    """The best design under ``budget_ms`` over precisions.

    ``variants``: ``{precision: (device, objective)}`` with at least two entries, e.g.
    ``{"fp32": ("my-cpu", "nb201-cifar10"), "int8": ("my-cpu-int8", "nb201-cifar10-int8")}``;
    every device must be known to ``predictor``. Other keywords go to :func:`search` (margin,
    confidence, candidates, ...). Nothing fits at any precision: an
    :class:`InfeasibleBudgetWarning` and the precision whose fastest design is fastest.
    """
    from edgeperf.optimize import objectives

    if not isinstance(variants, dict) or len(variants) < 2:
        raise InvalidParameterError(f"expected variants {{precision: (device, objective)}} with >= 2 entries, got {variants!r:.80}")
    found = {}
    for precision, spec in variants.items():
        if not isinstance(spec, (tuple, list)) or len(spec) != 2:
            raise InvalidParameterError(f"variant {precision!r}: expected (device, objective), got {spec!r:.80}")
        device, objective = spec
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InfeasibleBudgetWarning)  # said once below, for the whole choice
            found[precision] = search(predictor, objective=objectives.make(objective), budget_ms=budget_ms,
                                      devices=[device], tolerance=tolerance, **search_kwargs)[device]
    fitting = {p: d for p, d in found.items() if d.feasible}
    if not fitting:
        fastest = min(found, key=lambda p: found[p].latency_bound_ms)
        warnings.warn(InfeasibleBudgetWarning(
            f"no design fits {budget_ms:.4g} ms at any precision ({', '.join(found)}); returning the fastest, "
            f"{fastest} at {found[fastest].latency_bound_ms:.4g} ms"), stacklevel=2)
        return PrecisionDesign(precision=fastest, design=found[fastest], candidates=found)
    top = max(d.objective for d in fitting.values())
    shares = [resolve_tolerance(tolerance, objectives.make(variants[p][1])) for p in fitting]
    near = {p: d for p, d in fitting.items() if d.objective >= top - max(shares) * abs(top)}
    chosen = min(near, key=lambda p: (near[p].latency_bound_ms, p))
    return PrecisionDesign(precision=chosen, design=found[chosen], candidates=found)
