"""What ``JointPredictor.adapt`` tells about an adaptation (contract C2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeperf.errors import ModelFileError

__all__ = ["AdaptReport"]


@dataclass(frozen=True)
class AdaptReport:
    """The strategy used, how many measurements it saw and its leave-one-out error.

    ``loo_mape_pct`` / ``loo_spearman``: each distinct architecture predicted by the
    strategy fitted on the others (an honest estimate of the error on new
    architectures of this device, noisy with ~20 points). ``warnings``: what could
    make the adaptation unreliable (reference architectures not measured, merged
    repeats, a device unlike the training devices).
    """

    strategy: str
    n_measurements: int
    n_distinct_archs: int
    loo_mape_pct: float
    loo_spearman: float
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        lines = [
            f"strategy {self.strategy}: {self.n_measurements} measurements of {self.n_distinct_archs} architectures; "
            f"leave-one-out MAPE {self.loo_mape_pct:.1f}%, Spearman {self.loo_spearman:.3f}"
        ]
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def to_json(self) -> dict:
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        # NaN (a constant target has no rank correlation) is not JSON: stored as null
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}

    @classmethod
    def from_json(cls, d) -> "AdaptReport":
        try:
            ok = (
                isinstance(d, dict)
                and isinstance(d["strategy"], str)
                and all(isinstance(d[k], int) and not isinstance(d[k], bool) for k in ("n_measurements", "n_distinct_archs"))
                and all(d[k] is None or (isinstance(d[k], (int, float)) and not isinstance(d[k], bool))
                        for k in ("loo_mape_pct", "loo_spearman"))
                and isinstance(d["warnings"], list) and all(isinstance(w, str) for w in d["warnings"])
            )
        except KeyError:
            ok = False
        if not ok:
            raise ModelFileError(f"adapt report malformed: {d!r:.120}")
        nan = float("nan")
        return cls(
            strategy=d["strategy"], n_measurements=d["n_measurements"], n_distinct_archs=d["n_distinct_archs"],
            loo_mape_pct=nan if d["loo_mape_pct"] is None else float(d["loo_mape_pct"]),
            loo_spearman=nan if d["loo_spearman"] is None else float(d["loo_spearman"]),
            warnings=tuple(d["warnings"]),
        )
