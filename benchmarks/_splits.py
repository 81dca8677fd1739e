"""Adversarial train/test device splits for few-shot benchmarks.

- :func:`least_correlated_bisections`: NASFLAT's kind of split (Akhauri & Abdelfattah, MLSys 2024):
  a Kernighan-Lin bisection of the complete graph of devices whose edge weights are the rank
  correlations between devices, so the cut (the train/test correlation) is as small as the
  heuristic finds. Different seeds start from different random halves; each bisection gives two
  splits (either half trains). NASFLAT weights edges by the negative correlation and then prunes
  the halves; we minimise the correlation across the cut directly, which is the stated intent.
- :func:`hardware_type_splits`: hold out every device of one hardware type (all batch sizes of a
  GPU go with it), train on the rest.
"""

from __future__ import annotations

import numpy as np


def rank_correlations(Y: np.ndarray) -> np.ndarray:
    """Spearman matrix between the columns of ``Y`` (archs x devices, no missing values)."""
    from scipy.stats import rankdata

    R = np.apply_along_axis(rankdata, 0, Y)
    return np.corrcoef(R, rowvar=False)


def least_correlated_bisections(devices, corr: np.ndarray, seeds=(0, 1, 2)) -> list[tuple[list[str], list[str]]]:
    """Distinct (train, test) splits from Kernighan-Lin bisections minimising cross-correlation."""
    import networkx as nx
    from networkx.algorithms.community import kernighan_lin_bisection

    devices = list(devices)
    G = nx.Graph()
    G.add_nodes_from(range(len(devices)))
    for i in range(len(devices)):
        for j in range(i + 1, len(devices)):
            G.add_edge(i, j, weight=float(corr[i, j]))
    splits, seen = [], set()
    for seed in seeds:
        a, b = kernighan_lin_bisection(G, weight="weight", seed=seed)
        halves = sorted((sorted(devices[i] for i in a), sorted(devices[i] for i in b)))
        key = tuple(halves[0])
        if key in seen:
            continue
        seen.add(key)
        splits += [(halves[0], halves[1]), (halves[1], halves[0])]
    return splits


def cross_correlation(train, test, devices, corr: np.ndarray) -> float:
    """Mean rank correlation between the train and the test devices of a split."""
    pos = {d: i for i, d in enumerate(devices)}
    return float(np.mean([corr[pos[a], pos[b]] for a in train for b in test]))


def hardware_type_splits(devices, type_of) -> list[tuple[str, list[str], list[str]]]:
    """(type, train, test) for every hardware type with devices on both sides."""
    devices = list(devices)
    types = sorted({type_of(d) for d in devices})
    out = []
    for t in types:
        test = [d for d in devices if type_of(d) == t]
        train = [d for d in devices if type_of(d) != t]
        if test and train:
            out.append((t, train, test))
    return out
