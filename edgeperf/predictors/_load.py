"""``edgeperf.load``: a predictor from a model file (the predictor type from a fixed whitelist)."""

from __future__ import annotations

from edgeperf.errors import ModelFileError, UnknownNameError
from edgeperf.predictors._io import read_model_file

__all__ = ["load"]


def load(path):
    """Read a predictor written by ``save``; raises :class:`ModelFileError` for anything else."""
    from edgeperf import spaces
    from edgeperf.predictors._joint import JointPredictor
    from edgeperf.predictors._perdevice import PerDevicePredictor

    meta, arrays = read_model_file(path)
    types = {"JointPredictor": JointPredictor, "PerDevicePredictor": PerDevicePredictor}
    cls = types.get(meta.get("predictor_type"))
    if cls is None:
        raise ModelFileError(f"{path}: unknown predictor type {meta.get('predictor_type')!r}; expected one of {sorted(types)}")
    try:
        pred = cls(**meta["params"])._set_state(meta, arrays)
        spaces.get(pred.space_)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except UnknownNameError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: model metadata incomplete or inconsistent ({type(exc).__name__}: {exc})") from None
    return pred
