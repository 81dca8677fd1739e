"""Proxy reuse: rank candidates for a target device with a proxy device's latencies.

Latency rankings are largely monotone across devices (Lu et al., SIGMETRICS
2022), so one proxy's ranking is a good ranking for the target, and a few
target measurements calibrate absolute milliseconds. Which path is taken:

============ ===================================================================
n targets    what happens
============ ===================================================================
0            ``path="prior"``: the prior proxy (the device most central in the
             rank-agreement matrix of all proxies over the candidates) ranks;
             ``latency_ms`` are the proxy's own, uncalibrated milliseconds.
1-3, or all  ``path="prior-calibrated"``: prior proxy ranks (too few points for
equal values a rank-based choice); a log-space shift (1 point, or all equal) or
             a non-decreasing affine map (2-3 points) calibrates milliseconds.
>= 4         every proxy's Spearman with the targets gets a Bonett-Wright
             interval; the best proxy plus the proxies whose agreement is within
             the best's interval (at most :data:`MAX_ENSEMBLE`) are combined
             (mean of their log latencies, aligned to the best's scale).
             Lower bound >= ``agreement_threshold``: ``path="proxy"``, order of
             the combined proxy, monotone calibration. Otherwise
             ``path="adapted"``: AdaProxy-style transfer, a ridge regression of
             the target's log residual on the space's architecture encoding on
             top of the calibrated proxy (``adapt="predictor"`` instead calls
             the predictor's own ``adapt`` when it has one).
============ ===================================================================

Besides the proxy devices, the candidates' analytic MACs, parameters and memory
traffic (``@macs``, ``@params``, ``@mem_bytes``) compete as proxies when the target
samples choose one: a target unlike every proxy device (an accelerator, a large
batch) may rank by compute better than by any device. They never serve as the
prior of the first two rows, whose milliseconds must be a device's.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from edgeperf.errors import AdaptationError, EdgePerfError, InvalidParameterError
from edgeperf.proxy._calibrate import MonotoneCalibrator
from edgeperf.proxy._sources import _is_table, as_source, canonical_archs, load_any
from edgeperf.proxy._stats import Agreement, agreement, correlation_interval, interval_width
from edgeperf.spaces import COST_COLUMNS

__all__ = ["RankResult", "NextMeasurement", "rank", "select_within_budget", "DEFAULT_AGREEMENT_THRESHOLD"]

#: Lower confidence bound of the proxy's rank agreement below which the adapted path is taken.
DEFAULT_AGREEMENT_THRESHOLD = 0.5
#: Fewest target measurements for choosing the proxy by rank agreement (Spearman's interval needs n > 3).
MIN_RANK_SAMPLES = 4
#: Most proxies combined when several agree about equally well.
MAX_ENSEMBLE = 3
#: Analytic pseudo-proxies (see the module docstring).
ANALYTIC_PROXIES = tuple(f"@{c}" for c in COST_COLUMNS)
#: Ridge strengths tried (by generalised cross-validation) in the adapted path.
RIDGE_ALPHAS = np.logspace(-2, 3, 11)
#: Predicted latencies are floored here so logs stay finite (a predictor may output ~0).
MIN_LATENCY_MS = 1e-6
#: Quantile of the calibration's log residuals used by ``margin="auto"``.
AUTO_MARGIN_QUANTILE = 0.9
#: Quantile of a predictor's latency that ``margin="auto"`` budget picks must meet (C1).
BUDGET_QUANTILE = 0.95
#: Name the target device gets inside a copied predictor for ``adapt="predictor"``.
ADAPT_DEVICE_NAME = "_edgeperf_proxy_target"
ADAPT_MODES = ("features", "predictor")


@dataclass
class NextMeasurement:
    """What one more target measurement would buy.

    ``interval_width_now`` / ``interval_width_next``: width of the chosen proxy's
    agreement interval now and after one more measurement if the correlation
    stays the same; ``narrowing`` is their difference. ``choice_could_change``:
    a proxy outside the chosen set still has an upper bound above the chosen
    one's lower bound. ``could_cross_threshold``: the lower bound would cross
    ``agreement_threshold`` with one more point. ``suggested_arch``: the
    candidate on which the leading proxies disagree most in rank (measuring it
    separates them best).
    """

    interval_width_now: float
    interval_width_next: float
    narrowing: float
    choice_could_change: bool
    could_cross_threshold: bool
    suggested_arch: str | None
    note: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RankResult:
    """Outcome of :func:`rank`.

    ``order``: candidate indices, best (fastest) first. ``latency_ms``: calibrated
    predicted target latency per candidate, in the candidates' original order.
    ``proxy``: the device name(s) whose latencies ranked. ``agreement``: their rank
    agreement with the target samples, with interval. ``path`` / ``reason``: which
    path was taken and why. ``meets_budget``: indices predicted to meet
    ``budget_ms``, best first (empty without a budget).
    """

    candidates: list[str]
    order: np.ndarray
    latency_ms: np.ndarray
    proxy: list[str]
    agreement: Agreement
    path: str
    reason: str
    value_of_next_measurement: NextMeasurement
    proxy_agreements: pd.DataFrame
    calibration: str
    source_kind: str
    budget_ms: float | None = None
    meets_budget: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=int))
    scores: np.ndarray | None = None
    residual_log_q90: float = 0.0
    #: The predictor's calibrated BUDGET_QUANTILE latency per candidate (C1), when it has one.
    latency_upper_ms: np.ndarray | None = None

    def __repr__(self) -> str:  # short: the default repr printed every array (60k characters)
        best = int(self.order[0]) if len(self.order) else None
        shown = f", best={self.candidates[best]!r:.60} ({self.latency_ms[best]:.4g} ms)" if best is not None else ""
        budget = f", budget_ms={self.budget_ms:g} ({len(self.meets_budget)} meet it)" if self.budget_ms is not None else ""
        return (f"RankResult({len(self.candidates):,} candidates, proxy={self.proxy}, path={self.path!r}, "
                f"agreement={self.agreement}{shown}{budget})")

    def within_budget(self, budget_ms: float, *, margin: float | str = 0.0, scores=None) -> np.ndarray:
        """Indices of candidates with ``latency_ms * (1 + margin) <= budget_ms``, best first.

        Best = highest ``scores`` (e.g. accuracy; ties fastest first) when given,
        else fastest first. ``margin="auto"`` uses the predictor's calibrated
        :data:`BUDGET_QUANTILE` latency (``latency_upper_ms``) where the adapted path had
        one, else the 90% quantile of the calibration's log residuals on the target
        samples (0 when there are none).
        """
        budget_ms = float(budget_ms)
        if not np.isfinite(budget_ms) or budget_ms <= 0:
            raise AdaptationError(f"expected budget_ms > 0, got {budget_ms!r}")
        upper = None
        if isinstance(margin, str):
            if margin != "auto":
                raise AdaptationError(f"expected margin >= 0 or 'auto', got {margin!r}")
            upper = self.latency_upper_ms
            margin = float(np.expm1(self.residual_log_q90))
        margin = float(margin)
        if not np.isfinite(margin) or margin < 0:
            raise AdaptationError(f"expected margin >= 0 (a fraction: 0.1 = 10% headroom), got {margin!r}")
        scores = self.scores if scores is None else _check_scores(scores, len(self.candidates))
        if upper is not None:
            ok = np.flatnonzero(upper <= budget_ms)
        else:
            ok = np.flatnonzero(self.latency_ms * (1.0 + margin) <= budget_ms)
        if scores is None:
            return ok[np.argsort(self.latency_ms[ok], kind="stable")]
        return ok[np.lexsort((self.latency_ms[ok], -scores[ok]))]

    def to_frame(self) -> pd.DataFrame:
        """Candidates best first: ``index, arch, rank, latency_ms`` (+ ``score``, ``meets_budget``)."""
        rank_of = np.empty(len(self.order), dtype=int)
        rank_of[self.order] = np.arange(1, len(self.order) + 1)
        frame = pd.DataFrame(
            {"index": np.arange(len(self.candidates)), "arch": self.candidates, "rank": rank_of,
             "latency_ms": self.latency_ms}
        )
        if self.scores is not None:
            frame["score"] = self.scores
        if self.budget_ms is not None:
            frame["meets_budget"] = np.isin(frame["index"], self.meets_budget)
        return frame.iloc[self.order].reset_index(drop=True)

    def to_dict(self) -> dict:
        return {
            "proxy": self.proxy,
            "path": self.path,
            "reason": self.reason,
            "calibration": self.calibration,
            "source_kind": self.source_kind,
            "agreement": self.agreement.to_dict(),
            "value_of_next_measurement": self.value_of_next_measurement.to_dict(),
            "budget_ms": self.budget_ms,
            "meets_budget": [int(i) for i in self.meets_budget],
            "ranking": self.to_frame().to_dict(orient="records"),
        }


def _check_scores(scores, n: int) -> np.ndarray:
    s = np.asarray(scores, dtype=float).ravel()
    if len(s) != n:
        raise AdaptationError(f"expected one score per candidate ({n}), got {len(s)}")
    if not np.all(np.isfinite(s)):
        raise AdaptationError(f"scores must be finite; candidate #{int(np.flatnonzero(~np.isfinite(s))[0])} is {s[~np.isfinite(s)][0]}")
    return s


def _unique_candidates(cands: list[str], scores) -> tuple[list[str], np.ndarray | None, int]:
    """Candidates without repeats (the first of each kept) and their scores; the number dropped.

    A repeated candidate with two different scores is an error: which one is meant is unknown."""
    first: dict[str, int] = {}
    for i, a in enumerate(cands):
        j = first.setdefault(a, i)
        if scores is not None and scores[i] != scores[j]:
            raise AdaptationError(
                f"candidate {a!r} appears at positions {j} and {i} with different scores "
                f"({scores[j]:g} and {scores[i]:g}); keep one of them"
            )
    keep = np.fromiter(first.values(), dtype=int, count=len(first))
    return [cands[i] for i in keep], (None if scores is None else scores[keep]), len(cands) - len(keep)


def _check_targets(space, target_archs, target_values) -> tuple[list[str], np.ndarray, list[str]]:
    """Canonical, de-duplicated target archs with their values (duplicates: geometric mean)."""
    if target_archs is None:
        target_archs = []
    if target_values is None:
        target_values = []
    if isinstance(target_archs, str):
        target_archs = [target_archs]
    archs = list(target_archs)
    values = np.asarray(pd.to_numeric(pd.Series(list(np.ravel(target_values)), dtype=object), errors="coerce"), float)
    if len(archs) != len(values):
        raise AdaptationError(
            f"expected one target value per target architecture, got {len(archs)} architectures and "
            f"{len(values)} values; pass target_archs=[...] and target_values=[...] of equal length"
        )
    bad = np.flatnonzero(~np.isfinite(values) | (values <= 0))
    if len(bad):
        i = int(bad[0])
        raise AdaptationError(
            f"target measurement #{i} ({archs[i]!r}) is {np.ravel(target_values)[i]!r}; expected a finite latency > 0 ms "
            f"({len(bad)} bad value(s) in all; drop failed measurements instead of passing -1, 0 or NaN)"
        )
    archs = canonical_archs(space, archs, "target_archs")
    notes = []
    if len(set(archs)) < len(archs):
        grouped = pd.Series(np.log(values)).groupby(pd.Series(archs), sort=False).mean()
        notes.append(f"{len(archs) - len(grouped)} repeated target architecture(s) averaged (geometric mean)")
        archs, values = list(grouped.index), np.exp(grouped.to_numpy())
    return archs, values, notes


def _aligned_log(logp: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``logp`` rescaled to the mean and spread of ``ref`` (same order, comparable units)."""
    sd = logp.std()
    if sd == 0:
        return np.full_like(logp, ref.mean())
    return (logp - logp.mean()) / sd * ref.std() + ref.mean()


def _centrality(logp: np.ndarray) -> np.ndarray:
    """Mean Spearman of each column with every other one (prior proxy = the highest)."""
    from scipy.stats import rankdata

    d = logp.shape[1]
    if d == 1:
        return np.ones(1)
    with np.errstate(all="ignore"):  # Spearman = Pearson of average ranks; a constant column gives NaN
        m = np.corrcoef(rankdata(logp, axis=0), rowvar=False)
    m = np.where(np.isfinite(m), m, -1.0)
    np.fill_diagonal(m, np.nan)
    return np.nanmean(m, axis=1)


def _suggest(logp: np.ndarray, members: list[int], cand_idx: np.ndarray, measured: set, archs: list[str]) -> str | None:
    """Candidate on which the given proxies disagree most in rank percentile."""
    from scipy.stats import rankdata

    if len(members) < 2:
        return None
    pct = np.column_stack([rankdata(logp[cand_idx, j]) / len(cand_idx) for j in members])
    spread = pct.std(axis=1)
    for i in np.argsort(-spread, kind="stable"):
        if archs[cand_idx[i]] not in measured:
            return archs[cand_idx[i]]
    return None


def rank(
    candidates: Sequence[str],
    *,
    target_archs: Sequence[str] | None = None,
    target_values=None,
    proxies,
    budget_ms: float | None = None,
    margin: float | str = 0.0,
    scores=None,
    agreement_threshold: float = DEFAULT_AGREEMENT_THRESHOLD,
    metric: str = "latency_ms",
    method: str = "spearman",
    confidence: float = 0.95,
    exclude_devices: Sequence[str] = (),
    adapt: str = "features",
    calibration: str = "auto",
) -> RankResult:
    """Rank ``candidates`` for a target device measured only on ``target_archs``.

    Parameters
    ----------
    candidates : list of str
        Architectures to rank (strings of the proxies' search space).
    target_archs, target_values :
        The few target measurements (``metric`` units, ms for latency). May be
        empty: see the module doc for what each count does. Repeated archs are
        averaged; NaN, inf, <= 0 or a length mismatch raise
        :class:`~edgeperf.errors.AdaptationError`; foreign archs raise
        :class:`~edgeperf.errors.ArchitectureError`.
    proxies : fitted predictor, saved model path, data file, built-in dataset name or MeasurementTable
        A table is used as measured when every candidate and target arch is
        measured on a device (only such devices serve as proxies); otherwise
        per-device predictors are fitted on it.
    budget_ms, margin, scores :
        Fill :attr:`RankResult.meets_budget` (see :meth:`RankResult.within_budget`).
    agreement_threshold :
        Below this lower confidence bound of the proxy's agreement, adapt.
    exclude_devices :
        Devices never used as proxies (e.g. the target itself or its siblings).
    adapt : "features" | "predictor"
        Adapted path: ridge on architecture features, or the predictor's own ``adapt``.
    calibration : "auto" | "affine" | "isotonic"
        Passed to :class:`MonotoneCalibrator`.
    """
    if adapt not in ADAPT_MODES:
        raise InvalidParameterError(f"adapt must be one of {ADAPT_MODES}, got {adapt!r}")
    if not 0 < confidence < 1:
        raise InvalidParameterError(f"expected 0 < confidence < 1, got {confidence!r}")
    if method not in ("spearman", "kendall"):
        raise InvalidParameterError(f"method must be 'spearman' or 'kendall' (a confidence interval is needed), got {method!r}")
    from edgeperf import spaces

    loaded = load_any(proxies)
    if _is_table(loaded):
        space = spaces.get(loaded.space)
    elif hasattr(loaded, "space_"):
        space = spaces.get(loaded.space_)
    else:
        space = as_source(loaded).space  # raises the error that says what proxies may be
    if isinstance(candidates, str):
        candidates = [candidates]
    cands = canonical_archs(space, candidates, "candidates")
    if not cands:
        raise AdaptationError("expected at least one candidate architecture, got none")
    if scores is not None:
        scores = _check_scores(scores, len(cands))
    cands, scores, repeated = _unique_candidates(cands, scores)
    t_archs, y, notes = _check_targets(space, target_archs, target_values)
    if repeated:
        notes.append(f"{repeated} repeated candidate(s) ranked once")
    union = list(dict.fromkeys(cands + t_archs))
    src = as_source(loaded, archs_needed=union, metric=metric, exclude=exclude_devices)
    if not src.devices:
        raise AdaptationError(
            f"no proxy device left (excluded: {sorted(exclude_devices)}); expected at least one device that "
            "measured every candidate and target architecture, or a predictor"
        )
    P = src.matrix(union)
    if not np.all(np.isfinite(P)):
        raise AdaptationError("the proxies gave non-finite latencies; check the predictor or table")
    logp = np.log(np.maximum(P, MIN_LATENCY_MS))
    pos = {a: i for i, a in enumerate(union)}
    cand_idx = np.array([pos[a] for a in cands])
    targ_idx = np.array([pos[a] for a in t_archs], dtype=int)
    n = len(t_archs)
    central = _centrality(logp)
    prior = int(np.argmax(central))
    devices = src.devices + list(ANALYTIC_PROXIES)
    logp = np.hstack([logp, np.log(space.cost_matrix(union))])
    central = np.concatenate([central, np.full(len(ANALYTIC_PROXIES), -np.inf)])  # never the prior
    rank_info = n >= 2 and np.ptp(y) > 0

    # ---- every proxy's agreement with the target samples
    rows = []
    for j, d in enumerate(devices):
        a = agreement(logp[targ_idx, j], y, method, confidence) if n else Agreement(np.nan, -1.0, 1.0, 0, method, confidence)
        rows.append({"device": d, "agreement": a.value, "low": a.low, "high": a.high, "centrality": central[j]})
    per_proxy = pd.DataFrame(rows).set_index("device")

    def summary(members):
        return ", ".join(f"{devices[j]} {per_proxy['agreement'].iloc[j]:.3f}" for j in members)

    adapted = False
    upper_ms = None
    if n == 0:
        members, path = [prior], "prior"
        reason = (f"no target measurements: ranked by the prior proxy {devices[prior]!r}, the device most central "
                  f"in the rank-agreement matrix of the {len(devices)} proxies over the candidates "
                  f"(mean Spearman {central[prior]:.3f}); latency_ms are its own, uncalibrated")
    elif n < MIN_RANK_SAMPLES or not rank_info:
        members, path = [prior], "prior-calibrated"
        why = "all target values are equal, so they carry no rank information" if not rank_info and n >= 2 else (
            f"{n} target measurement(s) are too few to choose a proxy by rank agreement (need {MIN_RANK_SAMPLES})")
        reason = (f"{why}: ranked by the prior proxy {devices[prior]!r} (most central, mean Spearman "
                  f"{central[prior]:.3f}); the target samples only calibrate milliseconds")
    else:
        value = per_proxy["agreement"].fillna(-np.inf).to_numpy()
        best = int(np.lexsort((-central, -value))[0])
        best_low = per_proxy["low"].iloc[best]
        close = [j for j in np.lexsort((-central, -value)) if value[j] >= best_low]
        members = [int(j) for j in close[:MAX_ENSEMBLE]]
        path = "proxy"
        reason = (f"best rank agreement with the {n} target samples: {summary(members)}"
                  + (f" (combined: agreement within the best's {confidence:.0%} interval)" if len(members) > 1 else ""))

    # ---- combined proxy score, in log ms of the first member
    ref = logp[:, members[0]]
    score = np.mean([_aligned_log(logp[:, j], ref) for j in members], axis=0)
    agr = (agreement(score[targ_idx], y, method, confidence) if n
           else Agreement(np.nan, -1.0, 1.0, 0, method, confidence))
    if path == "proxy" and not agr.low >= agreement_threshold:
        adapted = True
        path = "adapted"
        reason = (f"weak rank agreement of the best proxies ({summary(members)}; combined {agr}): lower bound "
                  f"{agr.low:.3f} < agreement_threshold {agreement_threshold}, so ")

    cal_method = "shift" if (n >= 1 and not rank_info) else calibration
    cal = MonotoneCalibrator(method=cal_method).fit(np.exp(score[targ_idx]), y)
    log_pred = cal.predict_log(np.exp(score))
    residual = (np.log(y) - log_pred[targ_idx]) if n else np.zeros(0)
    if adapted:
        done = False
        if adapt == "predictor" and hasattr(src.predictor, "adapt"):
            try:  # on a copy: the caller's predictor must not gain a device
                p = copy.deepcopy(src.predictor)
                p.adapt(ADAPT_DEVICE_NAME, archs=t_archs, values=y)
                adapted_ms = np.asarray(p.predict(union, device=ADAPT_DEVICE_NAME), float)
                log_pred = np.log(np.maximum(adapted_ms, MIN_LATENCY_MS))
                if hasattr(p, "predict_quantile"):  # C1: budget picks on the calibrated quantile
                    upper_ms = np.asarray(p.predict_quantile(union, device=ADAPT_DEVICE_NAME, q=BUDGET_QUANTILE), float)
                reason += "the predictor's own adapt() was fitted on the target samples"
                done = True
            except EdgePerfError as exc:
                reason += f"(the predictor's adapt() failed: {exc}; used features) "
        elif adapt == "predictor":
            reason += f"(the {src.kind} proxy source has no adapt(); used features) "
        if not done:
            from sklearn.linear_model import RidgeCV

            X = space.encode(union).astype(float)
            ridge = RidgeCV(alphas=RIDGE_ALPHAS).fit(X[targ_idx], residual)
            log_pred = log_pred + ridge.predict(X)
            reason += (f"a ridge regression (alpha {ridge.alpha_:.3g}) of the log residual on the {space.name} "
                       "architecture encoding re-weights the calibrated proxy (AdaProxy-style transfer)")
        residual = np.log(y) - log_pred[targ_idx]
    if notes:
        reason += "; " + "; ".join(notes)

    latency = np.exp(log_pred[cand_idx])
    if adapted:
        order = np.lexsort((np.arange(len(cands)), latency))
    else:  # the proxy's order; calibration is monotone so latency agrees with it
        order = np.lexsort((np.arange(len(cands)), score[cand_idx]))

    # ---- value of one more measurement
    others = [j for j in range(len(devices)) if j not in members]
    runner_high = max((per_proxy["high"].iloc[j] for j in others), default=-np.inf)
    if n >= MIN_RANK_SAMPLES and rank_info:
        w_now = agr.width
        w_next = interval_width(agr.value, n + 1, method, confidence)
        low_next = correlation_interval(agr.value, n + 1, method, confidence)[0]
        could_cross = (agr.low < agreement_threshold) != (low_next < agreement_threshold)
        choice_change = bool(runner_high >= agr.low)
        note = (f"one more measurement narrows the agreement interval from {w_now:.3f} to {w_next:.3f} "
                f"if the correlation holds")
    else:
        w_now = 2.0
        w_next = interval_width(agr.value, n + 1, method, confidence) if n + 1 >= MIN_RANK_SAMPLES and np.isfinite(agr.value) else 2.0
        could_cross, choice_change = False, len(devices) > 1
        note = (f"{max(MIN_RANK_SAMPLES - n, 1)} more distinct target measurement(s) allow choosing the proxy by "
                "rank agreement instead of the prior")
    top_for_suggest = list(np.argsort(-per_proxy["agreement"].fillna(-np.inf).to_numpy(), kind="stable")[:MAX_ENSEMBLE + 1]) if n else list(np.argsort(-central)[:MAX_ENSEMBLE + 1])
    nxt = NextMeasurement(
        interval_width_now=float(w_now), interval_width_next=float(w_next), narrowing=float(w_now - w_next),
        choice_could_change=bool(choice_change), could_cross_threshold=bool(could_cross),
        suggested_arch=_suggest(logp, [int(j) for j in top_for_suggest], cand_idx, set(t_archs), union), note=note,
    )
    scores_arr = None if scores is None else _check_scores(scores, len(cands))
    result = RankResult(
        candidates=cands, order=order, latency_ms=latency, proxy=[devices[j] for j in members], agreement=agr,
        path=path, reason=reason, value_of_next_measurement=nxt, proxy_agreements=per_proxy.sort_values(
            "agreement", ascending=False), calibration="adapted" if adapted else cal.kind_, source_kind=src.kind,
        scores=scores_arr,
        residual_log_q90=float(max(np.quantile(residual, AUTO_MARGIN_QUANTILE), 0.0)) if len(residual) else 0.0,
        latency_upper_ms=None if upper_ms is None else upper_ms[cand_idx],
    )
    if budget_ms is not None:
        result.budget_ms = float(budget_ms)
        result.meets_budget = result.within_budget(budget_ms, margin=margin)
    return result


def select_within_budget(
    candidates: Sequence[str],
    budget_ms: float,
    *,
    proxies,
    target_archs: Sequence[str] | None = None,
    target_values=None,
    scores=None,
    margin: float | str = 0.0,
    **rank_kwargs,
) -> pd.DataFrame:
    """Candidates predicted to meet ``budget_ms`` on the target, best first.

    Best = highest ``scores`` (e.g. accuracy) when given, else fastest. Returns a
    frame with ``index`` (position in ``candidates``), ``arch``, ``latency_ms``
    (+ ``score``); the :class:`RankResult` is in ``frame.attrs["result"]``.
    """
    r = rank(candidates, target_archs=target_archs, target_values=target_values, proxies=proxies,
             budget_ms=budget_ms, margin=margin, scores=scores, **rank_kwargs)
    idx = r.meets_budget
    frame = pd.DataFrame({"index": idx, "arch": [r.candidates[i] for i in idx], "latency_ms": r.latency_ms[idx]})
    if r.scores is not None:
        frame["score"] = r.scores[idx]
    frame.attrs["result"] = r
    return frame
