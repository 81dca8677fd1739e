"""Drift along the order of the architecture list in the built-in tables, per device.

Why: budget picks by ``predict_quantile(q=0.95)`` miss most on devices whose latencies in HELP's
test range (``arch_index`` in [N, N + 1000)) sit higher or lower, relative to the other devices,
than in the range the 20 adaptation measurements come from ([0, N) and the reference archs).
No predictor can learn that from 20 measurements: it is a shift of the device itself along the
list (thermal state, clocks, background load while it was measured, presumably in list order; the
provenance does not say how the lists were measured).

Statistic, per device: log latency minus the mean log latency of the same architecture over all
devices of the table (so what every device shares, the architecture, cancels), then the median
of that in 10 consecutive bins of ``arch_index``. Reported: the spread (standard deviation) of the
10 bin medians, the same after shuffling the rows (what no drift looks like: the noise of a bin
median), and the shift of HELP's test range against the training range ([0, N)).

Only tables whose ``arch_index`` is the position in a list of random samples (FBNet, OFA): in
NAS-Bench-201 it is the space's enumeration order, which correlates with the architecture, so
bins there would measure structure, not drift.

    python benchmarks/measurement_drift.py                    # -> benchmarks/results/measurement_drift.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import edgeperf as ep

from _help_protocol import protocol_rows

RESULTS = Path(__file__).parent / "results"
#: Consecutive bins of the architecture list.
N_BINS = 10
#: Tables whose ``arch_index`` is the position in a list of random samples.
LIST_ORDERED_TABLES = ("help-fbnet", "help-ofa-mbv3")


def _bin_medians(R: np.ndarray, idx: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``(devices, bins)`` medians of the relative log latencies ``R`` (rows: archs) per index bin."""
    return np.array([[np.nanmedian(R[(idx >= a) & (idx < b), j]) for a, b in zip(edges[:-1], edges[1:])]
                     for j in range(R.shape[1])])


def run(data: str, seed: int = 0) -> dict:
    table = ep.datasets.load(data)
    wide, _, devices, _, train_rows, test_rows = protocol_rows(table)
    idx = wide["arch_index"].to_numpy()
    L = np.log(wide[devices].to_numpy(dtype=np.float64))
    R = L - np.nanmean(L, axis=1, keepdims=True)
    edges = np.linspace(0, idx.max() + 1, N_BINS + 1).astype(int)
    spread = _bin_medians(R, idx, edges).std(axis=1)
    shuffled = _bin_medians(R[np.random.default_rng(seed).permutation(len(R))], idx, edges).std(axis=1)
    shift = np.nanmedian(R[test_rows], axis=0) - np.nanmedian(R[train_rows], axis=0)
    rows = [{"device": d, "bin_median_spread_log": float(spread[j]), "shuffled_spread_log": float(shuffled[j]),
             "test_minus_train_log": float(shift[j])} for j, d in enumerate(devices)]
    rows.sort(key=lambda r: -r["bin_median_spread_log"])
    return {"data": data, "space": table.space, "n_bins": N_BINS, "bin_edges": edges.tolist(), "devices": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="*", default=list(LIST_ORDERED_TABLES), help=f"any of {LIST_ORDERED_TABLES}")
    args = ap.parse_args()
    wrong = [d for d in args.data if d not in LIST_ORDERED_TABLES]
    if wrong:
        ap.error(f"expected tables whose arch_index is a list of random samples {LIST_ORDERED_TABLES}, got {wrong}")
    from rich.console import Console
    from rich.table import Table

    results = [run(d) for d in args.data]
    t = Table(title="Drift along the architecture list: log latency relative to the other devices")
    for c in ("table", "device", "spread of 10 bin medians", "same, rows shuffled", "test - train range"):
        t.add_column(c, justify="left" if c in ("table", "device") else "right")
    for r in results:
        for d in r["devices"]:
            t.add_row(r["data"], d["device"], f"{d['bin_median_spread_log']:.3f}", f"{d['shuffled_spread_log']:.3f}",
                      f"{100 * np.expm1(d['test_minus_train_log']):+.1f} %")
    Console(width=120).print(t)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "measurement_drift.json"
    out.write_text(json.dumps({"command": "python benchmarks/measurement_drift.py " + " ".join(args.data),
                               "results": results}, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
