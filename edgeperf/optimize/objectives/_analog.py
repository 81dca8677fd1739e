"""NAS-Bench-201 CIFAR-10 accuracy of all 15,625 cells from the optional package
``analog-nasbench`` (AnalogNAS-Bench; install with ``pip install edgeperf[analog]``).

The package has no licence file, so edgeperf never copies its data: it reads the package's own
``data.anb`` where pip put it. That file is a pickle; it is read with a restricted unpickler
that admits exactly the package's two record classes (mapped onto inert stand-ins here, so
none of the package's code runs) and nothing else, then every field is checked.

Encoding (verified, not assumed): keys are NASLib ``op_indices`` tuples. Position ``k`` is
edge ``NASLIB_EDGES[k]`` (1-based ``(source, target)`` nodes) and a value indexes
``NASLIB_OPS``. The loader re-checks that reading against NAS-Bench-201's own definition on
every load: a cell whose output node is cut off from its input (only ``none`` on every path)
must score chance level (10 % on CIFAR-10), and every such cell must be one of those.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import itertools
import math
import pickle
from pathlib import Path

import numpy as np

from edgeperf.errors import DataValidationError, ObjectiveUnavailableError
from edgeperf.optimize.objectives import register
from edgeperf.optimize.objectives._base import Objective

PACKAGE = "analognasbench"
DATA_FILE = "data.anb"
INSTALL_HINT = "install the optional extra: pip install 'edgeperf[analog]' (the PyPI package analog-nasbench)"
#: NASLib's order of NAS-Bench-201 ops and edges (naslib/search_spaces/nasbench201/conversions.py).
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
NASLIB_EDGES = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))
#: Accuracy columns of the package's records that edgeperf exposes.
COLUMNS = {"baseline": "baseline_accuracy", "int8": "ptq_accuracy", "qat": "qat_accuracy"}
#: Chance level of CIFAR-10 (10 classes), with the rounding slack of the package's numbers.
CHANCE_PERCENT = 10.0
CHANCE_SLACK = 0.5
#: The real file is 5.6 MB; anything far larger is not it (and would be a memory bomb).
MAX_FILE_BYTES = 64 * 2**20
NB201_SPACE = "nasbench201"


class _Record:
    """Inert stand-in for the package's ``Architecture`` / ``DriftMeasurement``: it only holds
    the attributes the pickle sets; no code of the package runs."""


class _ArchitectureRecord(_Record):
    pass


class _DriftRecord(_Record):
    pass


_ADMITTED = {
    (f"{PACKAGE}.data", "Architecture"): _ArchitectureRecord,
    (f"{PACKAGE}.data", "DriftMeasurement"): _DriftRecord,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside the admitted classes."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        cls = _ADMITTED.get((module, name))
        if cls is None:
            raise _RefusedGlobal(
                f"refused global {module}.{name}: only {sorted(f'{m}.{n}' for m, n in _ADMITTED)} are admitted"
            )
        return cls


def data_path() -> Path:
    """Where the installed package keeps ``data.anb`` (found without importing the package)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ObjectiveUnavailableError(f"objective 'nb201-cifar10' needs NAS-Bench-201 accuracies: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / DATA_FILE
        if path.is_file():
            return path
    raise ObjectiveUnavailableError(f"the {PACKAGE} package has no {DATA_FILE}; reinstall it: {INSTALL_HINT}")


def read_records(path: Path) -> dict:
    """The pickle's dict of records, read with the restricted unpickler (or a clear error)."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DataValidationError(f"expected the ~5.6 MB AnalogNAS-Bench table, got {size} bytes", path=path)
    try:
        data = _RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except _RefusedGlobal as exc:
        raise DataValidationError(f"refused to read the pickle: {exc}", path=path) from None
    except Exception as exc:  # a corrupted pickle fails in many ways (EOFError, TypeError, ...)
        raise DataValidationError(
            f"corrupted AnalogNAS-Bench table ({type(exc).__name__}: {exc}); reinstall analog-nasbench", path=path
        ) from None
    if not isinstance(data, dict):
        raise DataValidationError(f"expected a dict of architecture records, got {type(data).__name__}", path=path)
    return data


def _cut_off(space, ops: tuple[str, ...]) -> bool:
    """True when no path of non-``none`` edges joins the cell's input to its output."""
    reach = {0}
    for (target, source), op in sorted(zip(space.edges, ops)):
        if op != "none" and source in reach:
            reach.add(target)
    return 3 not in reach


def _accuracy_by_arch(path: Path, column: str) -> dict[str, float]:
    from edgeperf import spaces

    space = spaces.get(NB201_SPACE)
    records = read_records(path)
    position = {(target - 1, source - 1): k for k, (source, target) in enumerate(NASLIB_EDGES)}
    order = [position[(t, s)] for t, s in space.edges]  # our edge -> NASLib position
    every = set(itertools.product(range(len(NASLIB_OPS)), repeat=len(NASLIB_EDGES)))
    if set(records) != every:
        raise DataValidationError(
            f"expected one record per NAS-Bench-201 cell (all {len(every)} op-index tuples), got "
            f"{len(records)} keys, e.g. {next(iter(records), None)!r:.60}",
            path=path,
        )
    out, baseline = {}, {}
    for key, rec in records.items():
        fields = getattr(rec, "__dict__", None)
        if not isinstance(rec, _ArchitectureRecord) or not isinstance(fields, dict):
            raise DataValidationError(f"record {key}: expected an Architecture record", path=path)
        value = fields.get(column)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise DataValidationError(f"record {key}: expected {column} in percent [0, 100], got {value!r:.40}", path=path)
        if tuple(fields.get("architecture", ())) != key:
            raise DataValidationError(f"record {key}: its architecture field {fields.get('architecture')!r:.40} "
                                      "disagrees with its key", path=path)
        ops = tuple(NASLIB_OPS[key[k]] for k in order)
        out[space.to_string(ops)] = float(value)
        baseline[ops] = fields.get(COLUMNS["baseline"])
    _check_against_definition(space, baseline, path)
    return out


def _check_against_definition(space, baseline: dict[tuple, float], path: Path) -> None:
    """Refuse the table unless exactly the cut-off cells score chance level (see the module doc)."""
    cut = np.array([_cut_off(space, ops) for ops in baseline])
    try:
        acc = np.array(list(baseline.values()), dtype=np.float64)
    except (TypeError, ValueError):
        raise DataValidationError("expected numeric baseline accuracies in every record", path=path) from None
    chance = np.abs(acc - CHANCE_PERCENT) <= CHANCE_SLACK
    if not (chance[cut].all() and (acc[~cut] > CHANCE_PERCENT + CHANCE_SLACK).mean() > 0.95):
        raise DataValidationError(
            "the table's op/edge order does not match NAS-Bench-201: cells whose output is cut off from "
            f"the input should score {CHANCE_PERCENT:g}% and the rest more ({int(chance[cut].sum())}/{int(cut.sum())} "
            "cut-off cells at chance); refusing to use it",
            path=path,
        )


@functools.lru_cache(maxsize=4)
def _cached_accuracy(path: str, mtime_ns: int, column: str) -> dict[str, float]:
    return _accuracy_by_arch(Path(path), column)


class _AnalogNB201(Objective):
    kind = "accuracy"
    unit = "% top-1 (CIFAR-10)"
    column = COLUMNS["baseline"]

    def __init__(self, *, path=None):
        self.path = Path(path) if path is not None else data_path()
        if not self.path.is_file():
            raise ObjectiveUnavailableError(f"no AnalogNAS-Bench table at {self.path}: {INSTALL_HINT}")

    @functools.cached_property
    def accuracy(self) -> dict[str, float]:
        return _cached_accuracy(str(self.path), self.path.stat().st_mtime_ns, self.column)

    def spaces(self) -> tuple[str, ...]:
        return (NB201_SPACE,)

    def _score(self, space, archs: list[str]) -> np.ndarray:
        get = self.accuracy.get
        return np.array([get(a, math.nan) for a in archs], dtype=np.float64)


@register("nb201-cifar10")
class NB201CIFAR10(_AnalogNB201):
    """NAS-Bench-201 CIFAR-10 test accuracy after full training (AnalogNAS-Bench baseline, 200 epochs)."""


@register("nb201-cifar10-int8")
class NB201CIFAR10Int8(_AnalogNB201):
    """The same networks quantised to int8 after training (AnalogNAS-Bench ``ptq_accuracy``)."""

    unit = "% top-1 (CIFAR-10, int8 PTQ)"
    column = COLUMNS["int8"]
