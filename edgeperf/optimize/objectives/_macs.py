"""MACs as the objective: the last resort when neither accuracy nor a proxy is wanted.

More compute is taken as more capacity. It is a stand-in, named as such wherever it is used:
within a latency budget it picks the design that does the most work, not the most accurate one.
"""

from __future__ import annotations

import numpy as np

from edgeperf.optimize.objectives import register
from edgeperf.optimize.objectives._base import Objective

#: ``space.cost_matrix`` columns are ``macs, params, mem_bytes`` (documented there).
MACS_COLUMN = 0


@register("macs")
class MACs(Objective):
    """Analytic multiply-accumulates of the network (``space.cost_matrix``), in millions."""

    kind = "macs"
    unit = "MMACs (stand-in for accuracy)"

    def _score(self, space, archs: list[str]) -> np.ndarray:
        return space.cost_matrix(archs)[:, MACS_COLUMN] / 1e6
