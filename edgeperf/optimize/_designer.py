"""The NN-based designer: device features + a budget -> a design, in one forward pass.

Following Lu, Yang & Ren ("Scaling Up Deep Neural Network Optimization for Edge Inference"),
a network maps the device's features and the constraint straight to a design, so a new
device needs no search of its own. Training amortises search:

1. a candidate pool: the whole space when it is finite (NAS-Bench-201), else the archive of
   one regularised-evolution run shared by all training devices at five budgets each;
2. devices: the predictor's training devices plus synthetic ones, interpolated in log-latency
   space between random pairs/triples of them and shifted in overall speed. A synthetic
   device's features are the same interpolation of the real devices' features, so features
   and latencies stay consistent;
3. labels: for each device and random budget, the best pool design within budget (the same
   latency bound as :func:`search`), found exactly over the pool in one vectorised pass;
4. a multi-layer perceptron with one categorical output per decision of ``space.choices``,
   trained by cross-entropy.

Device features (contract C6) come from the predictor's public API only: the log of its
predictions for the space's reference architectures. Any device the predictor knows at call
time has them, including one adapted after the designer was trained.

``design`` decodes the most probable designs by beam search over the decisions, checks them
against the predictor (the same bound as the search) and returns, of those that fit, the best
by the objective when scoring them is a lookup (an accuracy table, MACs), else the most
probable one. Designer files are a zip of JSON metadata and ``.npy`` arrays (no pickle), checked on load.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator

from edgeperf.errors import DesignerFileError, InvalidParameterError, NotFittedError
from edgeperf.optimize._search import (
    DEFAULT_CONFIDENCE,
    Design,
    InfeasibleBudgetWarning,
    LatencyBound,
    check_fitted,
    resolve_devices,
    resolve_measured,
    resolve_tolerance,
)

__all__ = ["Designer", "device_features", "load_designer", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "edgeperf-designer"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
#: A designer file is a few MB; larger members are refused before they are read.
MAX_MEMBER_BYTES = 256 * 2**20
#: Quantiles of a device's pool latency that the pool-building search aims at.
POOL_BUDGET_QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)
#: Random architectures added to an evolved pool (diversity for unusual devices); a fifth of
#: that for objectives that are not cheap (zero-cost proxies).
POOL_RANDOM = 500
#: Distinct integers are found by a table of the range instead of a sort while the range is at
#: most this many times the number of values (a table entry costs far less than a sort step).
_TABLE_UNIQUE_FACTOR = 8
#: When none of the beam's candidates fits, the beam is widened once by this factor.
_WIDER_BEAM = 8
#: Devices (real + synthetic) whose labels are computed in one vectorised block.
_LABEL_CHUNK = 64
#: Decoded option tuples whose architecture strings are remembered (building one costs ~20 us).
_MAX_MEMO = 1 << 16


def device_features(predictor, device: str, reference_archs=None) -> np.ndarray:
    """Log predicted latency (ms) of the reference architectures (default: the predictor's
    space's, ``edgeperf.datasets.reference_archs``) on ``device`` (contract C6)."""
    from edgeperf import datasets

    refs = reference_archs if reference_archs is not None else datasets.reference_archs(predictor.space_)
    return np.log(np.asarray(predictor.predict(list(refs), device=device), dtype=np.float64))


def _inputs(features: np.ndarray, log_budget: np.ndarray) -> np.ndarray:
    """Network input: the feature profile around its mean, the mean (device speed) and the
    budget relative to it, so a device faster than all seen is a shift, not a new pattern."""
    n, f = features.shape
    m = features.mean(axis=1)
    out = np.empty((n, f + 2), dtype=np.float32)
    out[:, :f] = features - m[:, None]
    out[:, f] = m
    out[:, f + 1] = log_budget - m
    return out


def _beam(logp: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``width`` most probable index tuples under independent per-decision log-probs.

    ``logp[k]`` is ``(options,)`` for one design or ``(n, options)`` for ``n`` designs at once;
    returns paths ``([n,] width', decisions)`` and their log-probabilities ``([n,] width')``."""
    single = logp[0].ndim == 1
    logp = [lp[None, :] if single else lp for lp in logp]
    n = logp[0].shape[0]
    paths = np.zeros((n, 1, 0), dtype=np.int64)
    total = np.zeros((n, 1))
    rows_n = np.arange(n)[:, None]
    for lp in logp:
        beam, opt, total = _beam_step(total, lp, width, rows_n)
        paths = np.concatenate([paths[rows_n, beam], opt[:, :, None]], axis=2)
    order = np.argsort(-total, axis=1, kind="stable")  # most probable first, once at the end
    paths, total = paths[rows_n, order], total[rows_n, order]
    return (paths[0], total[0]) if single else (paths, total)


def _beam_codes(logp: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_beam` of ``(n, options)`` log-probs with each path as one mixed-radix integer
    (``sum(path[k] * radix[k])``, :func:`_radix`) instead of an index tuple: the same beam, in
    the same order, without building the tuples (the space's size must fit in int64)."""
    n = logp[0].shape[0]
    codes = np.zeros((n, 1), dtype=np.int64)
    total = np.zeros((n, 1))
    rows_n = np.arange(n)[:, None]
    for lp in logp:
        beam, opt, total = _beam_step(total, lp, width, rows_n)
        codes = codes[rows_n, beam] * lp.shape[1] + opt
    order = np.argsort(-total, axis=1, kind="stable")
    return codes[rows_n, order], total[rows_n, order]


def _beam_step(total, lp, width, rows_n):
    """One decision of the beam: (beam index, option, log-probability) of the ``width`` best
    extensions of each row; their order does not matter yet."""
    n = total.shape[0]
    cand = (total[:, :, None] + lp[:, None, :]).reshape(n, -1)  # (n, beam * options)
    if cand.shape[1] > width:
        flat = np.argpartition(-cand, width - 1, axis=1)[:, :width]
    else:
        flat = np.broadcast_to(np.arange(cand.shape[1]), cand.shape)
    beam, opt = np.divmod(flat, lp.shape[1])
    return beam, opt, cand[rows_n, flat]


def _radix(sizes) -> "np.ndarray | None":
    """Place values of the mixed-radix code of option-index rows (the last decision varies
    fastest), or None when the space's size does not fit in int64."""
    if math.prod(sizes) >= 2**62:
        return None
    return np.cumprod([1, *sizes[:0:-1]])[::-1].astype(np.int64)


def _unique_ints(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` (inverse in ``values``' shape) of integers in
    [0, size): through a table of which ones occur when ``size`` is not much larger than
    ``values`` (no sort), else by ``np.unique``."""
    if size > _TABLE_UNIQUE_FACTOR * values.size:
        unique, inverse = np.unique(values, return_inverse=True)
        return unique, inverse.reshape(values.shape)
    seen = np.zeros(size, dtype=bool)
    seen[values] = True
    rank = np.cumsum(seen) - 1
    return np.flatnonzero(seen), rank[values]


def _unique_rows(rows: np.ndarray, sizes) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)`` of option-index rows, through one
    mixed-radix integer per row when the space's size fits in int64 (much faster)."""
    radix = _radix(sizes)
    if radix is not None:
        codes, inverse = np.unique(rows @ radix, return_inverse=True)
        return (codes[:, None] // radix[None, :]) % np.asarray(sizes, dtype=np.int64), inverse.ravel()
    unique, inverse = np.unique(rows, axis=0, return_inverse=True)
    return unique, inverse.ravel()


def _rows_of(devices) -> dict:
    """``{device: positions of its pairs}`` in first-seen device order."""
    device_of = np.array(devices, dtype=object)
    return {d: np.flatnonzero(device_of == d) for d in dict.fromkeys(devices)}


def _with_measured(names, inverse, rows_of, measured):
    """``(names, inverse)`` with each pair's own device's measured archs appended to its
    candidates (another device's measurements say nothing of this one, and a pair's design must
    not depend on the other pairs of its batch). Pairs with fewer are padded with their first
    candidate: a repeat never changes a pick (the first of equal candidates wins) and ranked
    lists drop repeats."""
    position = {a: i for i, a in enumerate(names)}  # the names are distinct: new ones go last
    own = {device: [position.setdefault(a, len(position)) for a in known] for device, known in measured.items()}
    names = list(position)
    width = max(map(len, own.values()))
    extra = np.repeat(inverse[:, :1], width, axis=1)
    for device, cols in own.items():
        extra[rows_of[device], : len(cols)] = cols
    return names, np.hstack([inverse, extra])


class Designer(BaseEstimator):
    """Maps (device features, latency budget) to a design of the predictor's space.

    >>> d = Designer().fit(predictor, objective="nb201-cifar10")     # doctest: +SKIP
    >>> d.design(device="pixel3", budget_ms=20.0)                    # doctest: +SKIP
    >>> d.design(device="pixel3", budget_ms=20.0, k=5)               # top-5 Designs  # doctest: +SKIP

    Parameters
    ----------
    hidden : widths of the hidden layers.
    synthetic_devices : synthetic devices interpolated between the training devices.
    budgets_per_device : random budgets per (real or synthetic) device.
    budget_quantiles : budgets are drawn between these quantiles of each device's pool latency.
    speed_shift : synthetic devices are up to ``exp(+-speed_shift)`` times faster or slower.
    epochs, batch_size, learning_rate : training of the network (Adam).
    pool_evaluations : size of the evolved pool for spaces too large to enumerate.
    beam : candidates decoded and checked against the predictor per design. 128: with 32, the
        held-out phones / server CPUs lost 1.21 / 0.68 accuracy points to the true optimum, with
        128 1.10 / 0.58, for a decode about 2.5x slower (benchmarks/optimize.py).
    margin, confidence : the latency bound, as in :func:`edgeperf.optimize.search`; by default
        ``"cautious"`` (the quantile, at least prediction + 20 %): a decoded design carries the
        network's error besides the predictor's (held-out server CPUs: 98.7 % within budget with
        it, 94.7 % with the search's quantile alone; benchmarks/optimize.py).
    tolerance : among fitting candidates within this share of the best score, the one with the
        most slack is chosen, as in :func:`edgeperf.optimize.search` (cheap objectives only).
    random_state : seed.
    """

    def __init__(self, *, hidden=(256, 256), synthetic_devices=1500, budgets_per_device=8,
                 budget_quantiles=(0.02, 0.98), speed_shift=1.0, epochs=60, batch_size=256,
                 learning_rate=2e-3, pool_evaluations=3000, beam=128, margin="cautious",
                 confidence=DEFAULT_CONFIDENCE, tolerance="auto", random_state=0):
        self.hidden = hidden
        self.synthetic_devices = synthetic_devices
        self.budgets_per_device = budgets_per_device
        self.budget_quantiles = budget_quantiles
        self.speed_shift = speed_shift
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.pool_evaluations = pool_evaluations
        self.beam = beam
        self.margin = margin
        self.confidence = confidence
        self.tolerance = tolerance
        self.random_state = random_state

    # ---- training ----------------------------------------------------------------------------
    def _check_params(self) -> None:
        def positive_int(name, minimum=1):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
                raise InvalidParameterError(f"expected Designer {name} >= {minimum}, got {v!r}")

        for name in ("synthetic_devices", "budgets_per_device", "epochs", "batch_size", "pool_evaluations", "beam"):
            positive_int(name, 0 if name == "synthetic_devices" else 1)
        if not self.hidden or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise InvalidParameterError(f"expected hidden widths >= 1, got {self.hidden!r}")
        lo, hi = self.budget_quantiles
        if not 0 <= lo < hi <= 1:
            raise InvalidParameterError(f"expected budget_quantiles 0 <= lo < hi <= 1, got {self.budget_quantiles!r}")
        if not self.learning_rate > 0 or not self.speed_shift >= 0:
            raise InvalidParameterError("expected learning_rate > 0 and speed_shift >= 0")

    def fit(self, predictor, *, objective, devices=None, candidates=None, progress=None):
        """Train on ``predictor``'s devices (or ``devices``) for ``objective``; returns self.

        ``candidates``: use these architectures as the pool instead of building one.

        ``progress(done, total, stage)`` is called as training advances (or pass None).
        """
        from edgeperf import datasets, spaces
        from edgeperf.optimize import objectives

        self._check_params()
        check_fitted(predictor)
        started = time.perf_counter()
        report = progress or (lambda done, total, stage: None)
        space = spaces.get(predictor.space_)
        objective = objectives.make(objective)
        objective.check_space(space)
        devices = resolve_devices(predictor, devices, None)
        rng = np.random.default_rng(self.random_state)
        bound = LatencyBound(predictor, devices, margin=self.margin, confidence=self.confidence)

        report(0, 4, "candidate pool")
        pool = space.validate(candidates) if candidates is not None else self._pool(predictor, space, objective, devices)
        scores = objective.score(pool, space=space)
        _, pool_bound = bound(pool)
        log_bound = np.log(pool_bound)
        refs = list(datasets.reference_archs(space.name))
        features = np.vstack([device_features(predictor, d, refs) for d in devices])

        report(1, 4, "labels")
        X, y = self._labels(rng, features, log_bound, scores, pool, space)

        report(2, 4, "training")
        self.input_mean_ = X.mean(axis=0)
        self.input_scale_ = X.std(axis=0) + 1e-6
        self.weights_, self.biases_, train_acc = self._train(rng, (X - self.input_mean_) / self.input_scale_, y, space)

        self.space_ = space.name
        self.choices_ = tuple((n, tuple(o)) for n, o in space.choices)
        self.reference_archs_ = refs
        self.objective_ = objective.describe()
        self.objective_name_ = objective.name
        self.bound_ = bound.describe()
        self.training_ = {
            "devices": list(devices), "pool_size": len(pool), "samples": int(len(y)),
            "synthetic_devices": int(self.synthetic_devices), "label_accuracy_per_decision": train_acc,
            "seconds": round(time.perf_counter() - started, 2),
        }
        self.predictor_ = predictor
        self.objective_instance_ = objective
        report(4, 4, "done")
        return self

    def _pool(self, predictor, space, objective, devices) -> list[str]:
        from edgeperf.optimize import optimizers

        exhaustive = optimizers.get("exhaustive")
        if objective.cheap and exhaustive.supports(space):
            return list(space.enumerate())
        probe = space.sample(POOL_RANDOM if objective.cheap else POOL_RANDOM // 5, seed=self.random_state, unique=True)
        lat = np.vstack([predictor.predict(probe, device=d) for d in devices])
        targets = [(j, float(np.quantile(lat[j], q))) for j in range(len(devices)) for q in POOL_BUDGET_QUANTILES]
        rows = np.array([j for j, _ in targets])
        bound = LatencyBound(predictor, devices, margin=self.margin, confidence=self.confidence)

        def target_bound(archs):  # each device predicted once, then one row per (device, budget)
            point, b = bound(archs)
            return point[rows], b[rows]

        problem = optimizers.Problem(
            space=space, devices=[f"{devices[j]}@{b:.4g}ms" for j, b in targets],
            budgets_ms=np.array([b for _, b in targets]),
            score=lambda archs: objective.score(archs, space=space), latency_bound=target_bound,
        )
        optimizers.get("evolution").run(problem, n_evaluations=self.pool_evaluations, seed=self.random_state)
        return list(dict.fromkeys(problem.archs + probe))

    def _labels(self, rng, features, log_bound, scores, pool, space):
        """Inputs and option-index labels of the best pool design for many (device, budget)."""
        n_real = features.shape[0]
        n_dev = n_real + self.synthetic_devices
        weights = np.zeros((n_dev, n_real))
        weights[np.arange(n_real), np.arange(n_real)] = 1.0
        shift = np.zeros(n_dev)
        for k in range(n_real, n_dev):
            members = rng.choice(n_real, size=min(n_real, int(rng.integers(2, 4))), replace=False)
            weights[k, members] = rng.dirichlet(np.ones(len(members)))
            shift[k] = rng.uniform(-self.speed_shift, self.speed_shift)
        pool_choices = np.array([space.to_choices(a) for a in pool], dtype=np.int64)
        lo, hi = self.budget_quantiles
        X, y = [], []
        for start in range(0, n_dev, _LABEL_CHUNK):
            w, s = weights[start : start + _LABEL_CHUNK], shift[start : start + _LABEL_CHUNK]
            lat = w @ log_bound + s[:, None]  # (chunk, pool) log latency bound
            feats = w @ features + s[:, None]
            q = rng.uniform(lo, hi, size=(len(w), self.budgets_per_device))
            budgets = np.stack([np.quantile(lat[i], q[i]) for i in range(len(w))])  # (chunk, B)
            for b in range(self.budgets_per_device):
                ok = lat <= budgets[:, b : b + 1]
                masked = np.where(ok, scores[None, :], -np.inf)
                best = masked.argmax(axis=1)
                fits = ok.any(axis=1)
                X.append(_inputs(feats[fits], budgets[fits, b]))
                y.append(pool_choices[best[fits]])
        return np.vstack(X), np.vstack(y)

    def _train(self, rng, X, y, space):
        import torch

        torch.manual_seed(int(rng.integers(2**31)))
        sizes = [len(o) for _, o in space.choices]
        widths = [X.shape[1], *self.hidden]
        layers = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        layers.append(torch.nn.Linear(widths[-1], sum(sizes)))
        net = torch.nn.Sequential(*layers)
        opt = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.epochs)
        Xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y)
        splits = np.cumsum([0, *sizes])
        for _ in range(self.epochs):
            order = torch.from_numpy(rng.permutation(len(Xt)))
            for i in range(0, len(Xt), self.batch_size):
                idx = order[i : i + self.batch_size]
                logits = net(Xt[idx])
                loss = sum(
                    torch.nn.functional.cross_entropy(logits[:, splits[k] : splits[k + 1]], yt[idx, k])
                    for k in range(len(sizes))
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        with torch.no_grad():
            logits = net(Xt)
            acc = float(np.mean([
                (logits[:, splits[k] : splits[k + 1]].argmax(1) == yt[:, k]).float().mean().item()
                for k in range(len(sizes))
            ]))
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        weights = [m.weight.detach().numpy().T.astype(np.float32).copy() for m in linears]
        biases = [m.bias.detach().numpy().astype(np.float32).copy() for m in linears]
        return weights, biases, round(acc, 4)

    # ---- designing ---------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise NotFittedError("this Designer is not fitted yet; call fit(predictor, objective=...) or load_designer(path)")

    def log_probabilities(self, features: np.ndarray, budget_ms) -> list[np.ndarray]:
        """Per decision, the log-probabilities of its options: ``(options,)`` for one device's
        ``features`` and one budget, or ``(n, options)`` for ``(n, f)`` features and ``n`` budgets."""
        self._check_fitted()
        single = np.ndim(features) == 1
        feats = np.atleast_2d(np.asarray(features, dtype=np.float64))
        budgets = np.broadcast_to(np.asarray(budget_ms, dtype=np.float64), (feats.shape[0],))
        h = (_inputs(feats, np.log(budgets)) - self.input_mean_) / self.input_scale_
        for i, (w, b) in enumerate(zip(self.weights_, self.biases_)):
            h = h @ w + b
            if i < len(self.weights_) - 1:
                np.maximum(h, 0.0, out=h)
        starts = np.cumsum([0] + [len(o) for _, o in self.choices_])
        z = h.astype(np.float64)  # log-softmax of every decision's block at once
        sizes = np.diff(starts)
        z -= np.repeat(np.maximum.reduceat(z, starts[:-1], axis=1), sizes, axis=1)
        z -= np.repeat(np.log(np.add.reduceat(np.exp(z), starts[:-1], axis=1)), sizes, axis=1)
        return [z[0, a:b] if single else z[:, a:b] for a, b in zip(starts[:-1], starts[1:])]

    def design(self, *, device: str, budget_ms: float, k: int | None = None, predictor=None, objective=None,
               measured="auto"):
        """The design for ``device`` under ``budget_ms``: an architecture string, or with ``k``
        the ``k`` most probable designs that fit, as :class:`Design` records.

        ``predictor`` (default: the one the designer was fitted with; required after
        :func:`load_designer`) supplies the device's features and the feasibility check;
        ``device`` may be any device it knows now, including one adapted after training.
        ``objective`` ranks the candidates that fit when it is cheap (default: the fitted one;
        after :func:`load_designer`, the built-in objective named in the file, if any).
        ``measured`` (``{device: {arch: latency_ms}}``, ``"auto"`` or None, as in
        :func:`edgeperf.optimize.search`): those architectures join the decoded candidates with
        their measured latency as the bound (no margin), so a measured arch that fits is always
        admissible.
        """
        return self.design_many([(device, budget_ms)], k=k, predictor=predictor, objective=objective,
                                measured=measured)[0]

    def design_many(self, requests, *, k: int | None = None, predictor=None, objective=None, measured="auto") -> list:
        """:meth:`design` for many ``(device, budget_ms)`` pairs at once, in their order.

        One forward pass and one beam decode for all pairs, one feasibility call to the
        predictor per device (for all of its pairs' candidates) and one scoring call, so the
        cost per design falls with the batch.
        """
        from edgeperf import spaces

        self._check_fitted()
        predictor = predictor if predictor is not None else getattr(self, "predictor_", None)
        if predictor is None:
            raise InvalidParameterError("this designer was loaded from a file: pass predictor=... to design()")
        check_fitted(predictor)
        if predictor.space_ != self.space_:
            raise InvalidParameterError(f"the designer is for space {self.space_!r}, the predictor for {predictor.space_!r}")
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
            raise InvalidParameterError(f"expected k >= 1 designs, got {k!r}")
        requests = [tuple(r) if isinstance(r, (tuple, list)) else r for r in requests]
        for r in requests:
            if not isinstance(r, tuple) or len(r) != 2:
                raise InvalidParameterError(f"expected (device, budget_ms) pairs, got {r!r:.80}")
            b = r[1]
            if isinstance(b, bool) or not isinstance(b, (int, float, np.floating, np.integer)) or not math.isfinite(b) or b <= 0:
                raise InvalidParameterError(f"expected budget_ms > 0, got {b!r}")
        if not requests:
            return []
        devices = resolve_devices(predictor, [d for d, _ in requests], None)
        budgets = np.array([float(b) for _, b in requests])
        space = spaces.get(self.space_)
        features = {d: device_features(predictor, d, self.reference_archs_) for d in devices}
        logp = self.log_probabilities(np.vstack([features[d] for d, _ in requests]), budgets)
        objective = self._ranking_objective(objective)
        measured = resolve_measured(predictor, space, measured)
        width = max(self.beam, 4 * (k or 1))
        decoded = self._decode(predictor, space, objective, requests, budgets, logp, width, ranked=k is not None,
                               measured=measured)
        rows = [(decoded, i) for i in range(len(requests))]
        retry = np.flatnonzero(decoded["n_fit"] == 0)
        if retry.size:  # nothing fits the narrow beam: look wider once, for those pairs only
            wider = self._decode(predictor, space, objective, [requests[i] for i in retry], budgets[retry],
                                 [lp[retry] for lp in logp], _WIDER_BEAM * width, ranked=k is not None,
                                 measured=measured)
            for r, i in enumerate(retry):
                rows[i] = (wider, r)
        if k is None and not retry.size:  # every pair has a fitting design: pick them with array operations
            first = decoded["inverse"][np.arange(len(requests)), decoded["first"]]
            return [decoded["names"][j] for j in first]
        out = []
        for (device, budget), (dec, i) in zip(requests, rows):
            bound = dec["bound"][i]
            if not dec["n_fit"][i]:
                warnings.warn(InfeasibleBudgetWarning(
                    f"none of the designer's {np.unique(dec['inverse'][i]).size} candidates fits {budget:.4g} ms on {device} "
                    f"({self.bound_}); returning the fastest candidate, {bound.min():.4g} ms"), stacklevel=3)
                chosen = np.array([int(bound.argmin())])
            else:
                chosen = dec["order"][i, : dec["n_fit"][i]] if k is not None else dec["first"][i : i + 1]
            arch_of = lambda j: dec["names"][dec["inverse"][i, j]]  # noqa: E731
            if k is None:
                out.append(arch_of(chosen[0]))
                continue
            point, scores = dec["point"][i], dec["scores"][i]
            seen = set()  # a measured arch may also be one of the beam's: list it once
            chosen = [j for j in chosen if not (dec["inverse"][i, j] in seen or seen.add(dec["inverse"][i, j]))]
            out.append([
                Design(device=device, budget_ms=float(budget), arch=arch_of(j), latency_ms=float(point[j]),
                       latency_bound_ms=float(bound[j]), objective=float(scores[j]), feasible=bool(bound[j] <= budget))
                for j in chosen[:k]
            ])
        return out

    def _decode(self, predictor, space, objective, requests, budgets, logp, width, *, ranked, measured=None):
        """One beam decode for all pairs, one bound call per device and one scoring call:
        arrays over (pair, candidate) of point, bound and scores, the number of candidates that
        fit (``n_fit``), the position of each pair's pick (``first``; meaningful where one fits)
        and with ``ranked`` every candidate's position in ranking order (``order``: those that fit
        first). Candidate names: ``names[inverse[pair, candidate]]``.

        The pick is the first candidate of the ranking, computed without sorting: among the
        fitting candidates tied with the best score (within the tolerance), the one with the
        smallest bound (ties: the more probable one); without an objective, the most probable one
        that fits. A pair's own device's ``measured`` archs are candidates of that pair too
        (after the beam's), with their measured latency as point and bound."""
        sizes = [len(o) for _, o in self.choices_]
        radix = _radix(sizes)
        if radix is not None:  # paths as mixed-radix integers (NAS-Bench-201, OFA): no index tuples
            codes, _ = _beam_codes(logp, width)
            n, w = codes.shape
            unique, inverse = _unique_ints(codes, math.prod(sizes))
            names = self._arch_names(space, unique, radix, sizes)
        else:
            paths, _ = _beam(logp, width)  # (n, w, decisions)
            n, w = paths.shape[:2]
            unique, inverse = _unique_rows(paths.reshape(n * w, -1), sizes)
            names = [self._arch_of(space, p) for p in unique]
        inverse = inverse.reshape(n, w)
        rows_of = _rows_of([d for d, _ in requests])
        measured = {d: measured[d] for d in rows_of if measured and measured.get(d)}
        if measured:
            names, inverse = _with_measured(names, inverse, rows_of, measured)
            w = inverse.shape[1]
        point, bound = self._bounds(predictor, rows_of, names, inverse, measured)
        fits = bound <= budgets[:, None]
        n_fit = fits.sum(axis=1)
        if objective is not None:  # a table lookup: rank the fitting candidates by it
            scores = np.asarray(objective.score(names, space=space), dtype=np.float64)[inverse]
            masked = np.where(fits, scores, -np.inf)
            top = masked.max(axis=1, keepdims=True)
            tolerance = resolve_tolerance(self.tolerance, objective)
            tied = fits & (masked >= top - tolerance * np.abs(np.where(np.isfinite(top), top, 0.0)))
            first = np.where(tied, bound, np.inf).argmin(axis=1)  # argmin: the earliest of equal bounds
        else:  # fitting first, by probability (the beam's order)
            scores = np.full((n, w), math.nan)
            first = fits.argmax(axis=1)
        out = {"names": names, "inverse": inverse, "first": first, "n_fit": n_fit,
               "point": point, "bound": bound, "scores": scores}
        if ranked:
            row = np.repeat(np.arange(n), w)
            if objective is not None:
                # fitting first; best score first, and designs within the tolerance of it by slack first
                key = np.where(tied, -np.inf, -masked)
                flat = np.lexsort((bound.ravel(), key.ravel(), ~fits.ravel(), row))
            else:
                flat = np.lexsort((np.tile(np.arange(w), n), ~fits.ravel(), row))
            out["order"] = flat.reshape(n, w) - (np.arange(n) * w)[:, None]
        return out

    def _bounds(self, predictor, rows_of, names, inverse, measured=None):
        """(point, bound) arrays ``(pairs, candidates)``: one bound call per device of ``rows_of``
        (:func:`_rows_of`), for the distinct candidates of its pairs."""
        n, w = inverse.shape
        if len(rows_of) == 1:  # one device: every candidate is its
            p, b = LatencyBound(predictor, list(rows_of), margin=self.margin, confidence=self.confidence,
                                measured=measured)(names)
            return p[0][inverse], b[0][inverse]
        point, bound = np.empty((n, w)), np.empty((n, w))
        for device, rows in rows_of.items():
            used, local = _unique_ints(inverse[rows], len(names))
            p, b = LatencyBound(predictor, [device], margin=self.margin, confidence=self.confidence,
                                measured=measured)([names[i] for i in used])
            point[rows], bound[rows] = p[0][local].reshape(len(rows), w), b[0][local].reshape(len(rows), w)
        return point, bound

    def _arch_names(self, space, codes, radix, sizes) -> list[str]:
        """Architecture strings of mixed-radix path codes (remembered, as in :meth:`_arch_of`)."""
        memo = self.__dict__.setdefault("_code_memo", {})
        if len(memo) >= _MAX_MEMO:
            memo.clear()
        get = memo.get
        names = [get(c) for c in codes.tolist()]
        missing = [i for i, a in enumerate(names) if a is None]
        if missing:
            rows = (codes[missing, None] // radix[None, :]) % np.asarray(sizes, dtype=np.int64)
            for i, path in zip(missing, rows):
                names[i] = memo[int(codes[i])] = space.from_choices(path)
        return names

    def _arch_of(self, space, path) -> str:
        """The architecture string of one option tuple (remembered: building it is the slow part)."""
        memo = self.__dict__.setdefault("_arch_memo", {})
        key = path.tobytes()
        arch = memo.get(key)
        if arch is None:
            if len(memo) >= _MAX_MEMO:
                memo.clear()
            arch = memo[key] = space.from_choices(path)
        return arch

    def _ranking_objective(self, objective):
        """The objective that ranks fitting candidates: the given one if cheap, else the
        designer's own cheap objective, else None (rank by probability)."""
        if objective is None:
            return self._cheap_objective()
        from edgeperf.optimize import objectives

        objective = objectives.make(objective)
        return objective if objective.cheap else None

    def _cheap_objective(self):
        """The objective when scoring a few candidates costs nothing (a table, MACs): the
        fitted one, or after loading a built-in one re-made by name; else None (proxies, or a
        user's table that is not in the file)."""
        from edgeperf.errors import EdgePerfError
        from edgeperf.optimize import objectives

        if not hasattr(self, "objective_instance_"):
            try:
                self.objective_instance_ = objectives.get(self.objective_name_)
            except (EdgePerfError, TypeError):
                self.objective_instance_ = None
        obj = self.objective_instance_
        return obj if obj is not None and obj.cheap else None

    # ---- files -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted designer to one file (zip of JSON metadata + .npy arrays)."""
        from edgeperf._version import __version__

        self._check_fitted()
        path = Path(path)
        arrays = {"input_mean": self.input_mean_, "input_scale": self.input_scale_}
        for i, (w, b) in enumerate(zip(self.weights_, self.biases_)):
            arrays[f"w{i}"], arrays[f"b{i}"] = w, b
        params = self.get_params()
        params["hidden"] = list(params["hidden"])
        params["budget_quantiles"] = list(params["budget_quantiles"])
        meta = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "edgeperf_version": __version__,
            "params": params, "space": self.space_, "choices": [[n, list(o)] for n, o in self.choices_],
            "reference_archs": self.reference_archs_, "objective": self.objective_,
            "objective_name": self.objective_name_, "bound": self.bound_, "training": self.training_,
            "n_layers": len(self.weights_),
        }
        tmp = path.with_name(path.name + ".tmp")
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                zf.writestr(_METADATA, json.dumps(meta, indent=1))
                for name, arr in arrays.items():
                    buf = io.BytesIO()
                    np.save(buf, np.asarray(arr), allow_pickle=False)
                    zf.writestr(f"arrays/{name}.npy", buf.getvalue())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()
        return path


def load_designer(path: str | os.PathLike) -> Designer:
    """Read a designer written by :meth:`Designer.save`; anything else raises
    :class:`DesignerFileError`. Pass the predictor to ``design(..., predictor=p)``."""
    from edgeperf import datasets, spaces
    from edgeperf.errors import UnknownNameError

    path = Path(path)
    meta, arrays = _read(path)
    try:
        space = spaces.get(meta["space"])
    except UnknownNameError as exc:
        raise DesignerFileError(f"{path}: {exc}") from None
    except (KeyError, TypeError):
        raise DesignerFileError(f"{path}: metadata has no valid 'space'") from None
    want = [[n, list(o)] for n, o in space.choices]
    if meta.get("choices") != want:
        raise DesignerFileError(f"{path}: its decisions do not match space {space.name!r} of this edgeperf version")
    if meta.get("reference_archs") != list(datasets.reference_archs(space.name)):
        raise DesignerFileError(f"{path}: it was trained on other reference architectures than {space.name!r} has now")
    try:
        params = dict(meta["params"])
        params["hidden"] = tuple(params["hidden"])
        params["budget_quantiles"] = tuple(params["budget_quantiles"])
        d = Designer(**params)
        n = int(meta["n_layers"])
        weights = [arrays[f"w{i}"] for i in range(n)]
        biases = [arrays[f"b{i}"] for i in range(n)]
        mean, scale = arrays["input_mean"], arrays["input_scale"]
    except (KeyError, TypeError, ValueError) as exc:
        raise DesignerFileError(f"{path}: metadata or arrays incomplete ({type(exc).__name__}: {exc})") from None
    n_inputs = len(meta["reference_archs"]) + 2  # features around their mean, the mean, the budget
    width = n_inputs
    for i, (w, b) in enumerate(zip(weights, biases)):
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            raise DesignerFileError(f"{path}: layer {i} has shapes {w.shape}/{b.shape}; expected ({width}, m)/(m,)")
        width = w.shape[1]
    if width != sum(len(o) for _, o in space.choices) or mean.shape != (n_inputs,) or scale.shape != (n_inputs,):
        raise DesignerFileError(f"{path}: input or output sizes do not match space {space.name!r}")
    if not all(np.isfinite(a).all() for a in (*weights, *biases, mean, scale)) or not (scale > 0).all():
        raise DesignerFileError(f"{path}: non-finite parameters; the file is corrupted")
    d.weights_, d.biases_ = [w.astype(np.float32) for w in weights], [b.astype(np.float32) for b in biases]
    d.input_mean_, d.input_scale_ = mean.astype(np.float32), scale.astype(np.float32)
    d.space_ = space.name
    d.choices_ = tuple((n_, tuple(o)) for n_, o in space.choices)
    d.reference_archs_ = list(meta["reference_archs"])
    d.objective_, d.objective_name_ = str(meta.get("objective")), str(meta.get("objective_name"))
    d.bound_, d.training_ = str(meta.get("bound")), meta.get("training", {})
    return d


def _read(path: Path) -> tuple[dict, dict]:
    if not path.is_file():
        raise DesignerFileError(f"expected an edgeperf designer file, but {path} does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise DesignerFileError(f"{path} is not an edgeperf designer file (expected a zip written by Designer.save())")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
            if _METADATA not in infos:
                raise DesignerFileError(f"{path}: zip without {_METADATA}; not an edgeperf designer file")
            for info in infos.values():
                if info.file_size > MAX_MEMBER_BYTES or info.flag_bits & 0x1:
                    raise DesignerFileError(f"{path}: member {info.filename} is encrypted or larger than "
                                            f"{MAX_MEMBER_BYTES} bytes; refusing to read it")
            try:
                meta = json.loads(zf.read(_METADATA).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                raise DesignerFileError(f"{path}: {_METADATA} is not valid JSON ({exc})") from None
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
                got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise DesignerFileError(f"{path}: expected format {FORMAT_NAME!r}, got {got!r}; not an edgeperf designer")
            if meta.get("format_version") != FORMAT_VERSION:
                raise DesignerFileError(f"{path}: expected designer format version {FORMAT_VERSION}, got "
                                        f"{meta.get('format_version')!r}; retrain with this edgeperf version")
            arrays = {}
            for name in infos:
                if name.startswith("arrays/") and name.endswith(".npy"):
                    try:
                        arrays[name[len("arrays/") : -len(".npy")]] = np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
                    except ValueError as exc:
                        raise DesignerFileError(f"{path}: array {name} cannot be read without pickle: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise DesignerFileError(f"{path}: corrupted or truncated designer file ({exc})") from None
    return meta, arrays
