"""How monotone latency is across devices: a device x device rank-agreement matrix.

From measurements each pair is compared over the architectures both devices
measured; from a predictor every device is predicted on one common sample.
Devices are ordered by average-linkage hierarchical clustering of
``1 - agreement`` so families (GPUs, server CPUs, phones) sit together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from edgeperf.errors import AdaptationError
from edgeperf.proxy._sources import _is_table, canonical_archs, load_any
from edgeperf.proxy._stats import METHODS, _check_method, rank_correlation

__all__ = ["SimilarityResult", "similarity"]

#: Architectures sampled when a predictor is compared and no ``archs`` are given.
DEFAULT_PREDICTOR_ARCHS = 1000
DEFAULT_SEED = 0
#: Pairs sharing fewer architectures than this get NaN agreement.
MIN_SHARED_ARCHS = 3
#: Distance given to device pairs with no agreement (NaN) when clustering: as far as possible.
MAX_DISTANCE = {"spearman": 2.0, "kendall": 2.0, "topk": 1.0}
HEATMAP_CELL_INCHES = 0.42
HEATMAP_MIN_INCHES = 5.0


@dataclass
class SimilarityResult:
    """Device x device rank agreement.

    ``matrix`` is symmetric with a unit diagonal, rows and columns in clustered
    ``order``; ``n_shared`` counts the architectures each pair was compared on.
    """

    matrix: pd.DataFrame
    n_shared: pd.DataFrame
    method: str
    metric: str
    order: list[str]
    linkage: np.ndarray | None = None
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def devices(self) -> list[str]:
        return list(self.order)

    def centrality(self) -> pd.Series:
        """Mean agreement of each device with every other one, highest first."""
        m = self.matrix.to_numpy(dtype=float).copy()
        np.fill_diagonal(m, np.nan)
        with np.errstate(all="ignore"):
            mean = np.nanmean(m, axis=1) if m.shape[0] > 1 else np.ones(m.shape[0])
        return pd.Series(mean, index=self.matrix.index, name="mean_agreement").sort_values(ascending=False)

    def central_device(self) -> str:
        """The device that agrees best, on average, with all others (the prior proxy)."""
        return str(self.centrality().index[0])

    def to_dict(self) -> dict:
        def clean(a):
            return [[None if not np.isfinite(v) else float(v) for v in row] for row in a]

        return {
            "method": self.method,
            "metric": self.metric,
            "source": self.source,
            "order": self.order,
            "matrix": clean(self.matrix.to_numpy(dtype=float)),
            "n_shared": self.n_shared.to_numpy(dtype=int).tolist(),
            "centrality": {k: (None if not np.isfinite(v) else float(v)) for k, v in self.centrality().items()},
            "notes": self.notes,
        }

    def to_csv(self, path) -> Path:
        path = Path(path)
        self.matrix.to_csv(path, float_format="%.4f", index_label="device")
        return path

    def to_json(self, path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    def plot(self, path) -> Path:
        """Clustered heatmap with the dendrogram on top, written as PNG (matplotlib Agg)."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from scipy.cluster.hierarchy import dendrogram

        n = len(self.order)
        size = max(HEATMAP_MIN_INCHES, HEATMAP_CELL_INCHES * n + 2.5)
        fig = plt.figure(figsize=(size + 1.0, size + 1.2))
        has_tree = self.linkage is not None and n > 2
        if has_tree:
            ax_tree = fig.add_axes([0.22, 0.80, 0.62, 0.14])
            dendrogram(self.linkage, ax=ax_tree, no_labels=True, color_threshold=0, above_threshold_color="0.3")
            ax_tree.set_xlim(0, 10 * n)  # dendrogram leaves sit at 5, 15, ...: align with the cells
            ax_tree.set_axis_off()
        ax = fig.add_axes([0.22, 0.08, 0.62, 0.70 if has_tree else 0.84])
        vals = self.matrix.to_numpy(dtype=float)
        low = 0.0 if self.method == "topk" else min(0.0, float(np.nanmin(vals))) if np.isfinite(vals).any() else 0.0
        im = ax.imshow(vals, cmap="viridis", vmin=low, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(n), self.order, rotation=90, fontsize=8)
        ax.set_yticks(range(n), self.order, fontsize=8)
        if n <= 30:
            for i in range(n):
                for j in range(n):
                    if np.isfinite(vals[i, j]):
                        ax.text(j, i, f"{vals[i, j]:.2f}", ha="center", va="center", fontsize=5.5,
                                color="white" if vals[i, j] < (low + 1.0) / 2 else "black")
        cax = fig.add_axes([0.86, 0.08, 0.025, 0.70 if has_tree else 0.84])
        fig.colorbar(im, cax=cax, label=f"{self.method} rank agreement")
        fig.suptitle(f"{self.metric} rank agreement between devices ({self.method})", fontsize=10)
        path = Path(path)
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path

    def write_report(self, out_dir) -> dict[str, Path]:
        """``similarity.csv``, ``similarity.json`` and ``similarity.png`` in ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return {
            "csv": self.to_csv(out / "similarity.csv"),
            "json": self.to_json(out / "similarity.json"),
            "png": self.plot(out / "similarity.png"),
        }


def _pairwise(values: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Agreement and shared counts of every column pair of an (archs x devices) array with NaN gaps."""
    d = values.shape[1]
    mat = np.eye(d)
    shared = np.zeros((d, d), dtype=int)
    finite = np.isfinite(values)
    for i in range(d):
        shared[i, i] = int(finite[:, i].sum())
        for j in range(i + 1, d):
            both = finite[:, i] & finite[:, j]
            shared[i, j] = shared[j, i] = int(both.sum())
            r = rank_correlation(values[both, i], values[both, j], method) if both.sum() >= MIN_SHARED_ARCHS else np.nan
            mat[i, j] = mat[j, i] = r
    return mat, shared


def _cluster_order(mat: np.ndarray, method: str) -> tuple[list[int], np.ndarray | None]:
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    d = mat.shape[0]
    if d < 3:
        return list(range(d)), None
    dist = 1.0 - mat
    dist = np.where(np.isfinite(dist), dist, MAX_DISTANCE[method])
    dist = np.clip((dist + dist.T) / 2.0, 0.0, None)
    np.fill_diagonal(dist, 0.0)
    link = linkage(squareform(dist, checks=False), method="average", optimal_ordering=True)
    return [int(i) for i in leaves_list(link)], link


def similarity(
    source,
    *,
    archs=None,
    metric: str = "latency_ms",
    method: str = "spearman",
    devices=None,
    seed: int = DEFAULT_SEED,
) -> SimilarityResult:
    """Rank agreement of every device pair.

    Parameters
    ----------
    source : MeasurementTable, fitted predictor, or a path / built-in dataset name
        Measurements are compared pairwise over the architectures both devices
        have (NaN below :data:`MIN_SHARED_ARCHS`); a predictor predicts every
        device on one common architecture sample.
    archs : None, int or list of str
        Restrict to these architectures (a list), or to a random sample of this
        many (an int, drawn with ``seed``). For a predictor ``None`` means
        :data:`DEFAULT_PREDICTOR_ARCHS` sampled architectures; for a table all.
    method : "spearman" | "kendall" | "topk"
        Spearman (average ranks) and Kendall tau-b handle ties; ``topk`` is the
        overlap of the 10% fastest architectures.
    devices : list of str, optional
        Only these devices.
    """
    from edgeperf import spaces

    _check_method(method)
    src = load_any(source)
    notes: list[str] = []
    if _is_table(src):
        table = src
        space = spaces.get(table.space)
        wide = table.wide(metric).drop(columns=["arch_index"], errors="ignore")
        if devices is not None:
            wide = table.select(devices=devices).wide(metric).drop(columns=["arch_index"], errors="ignore")
        if isinstance(archs, (int, np.integer)) and not isinstance(archs, bool):
            rng = np.random.default_rng(seed)
            take = rng.choice(len(wide), size=min(int(archs), len(wide)), replace=False)
            wide = wide.iloc[np.sort(take)]
        elif archs is not None:
            wanted = canonical_archs(space, archs, "archs")
            wide = wide.loc[wide.index.intersection(wanted)]
        values = wide.to_numpy(dtype=float)
        names = [str(c) for c in wide.columns]
        label = str(table.source or "table")
    else:
        if not hasattr(src, "predict") or not hasattr(src, "devices_"):
            raise AdaptationError(
                f"similarity needs a MeasurementTable, a fitted predictor, a data file or a built-in dataset name; "
                f"got {type(src).__name__}"
            )
        space = spaces.get(src.space_)
        if archs is None or isinstance(archs, (int, np.integer)):
            n = DEFAULT_PREDICTOR_ARCHS if archs is None else int(archs)
            archs = space.sample(n, seed=seed)
            notes.append(f"predicted on {n} architectures sampled from {space.name} with seed {seed}")
        archs = canonical_archs(space, archs, "archs")
        names = [d for d in src.devices_ if devices is None or d in set(devices)]
        values = np.column_stack([np.asarray(src.predict(archs, device=d), float).ravel() for d in names])
        label = type(src).__name__
    if len(names) == 0:
        raise AdaptationError("no devices to compare; expected at least one device in the source")
    mat, shared = _pairwise(values, method)
    order, link = _cluster_order(mat, method)
    ordered = [names[i] for i in order]
    frame = pd.DataFrame(mat[np.ix_(order, order)], index=ordered, columns=ordered)
    counts = pd.DataFrame(shared[np.ix_(order, order)], index=ordered, columns=ordered)
    if np.isnan(mat).any():
        notes.append(f"some pairs share fewer than {MIN_SHARED_ARCHS} architectures or are constant: NaN")
    return SimilarityResult(frame, counts, method, metric, ordered, link, label, notes)
