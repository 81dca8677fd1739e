"""``edgeperf.load``: a predictor from a model file (the predictor type from a fixed whitelist)."""

from __future__ import annotations

import math

from edgeperf.errors import ModelFileError, UnknownNameError
from edgeperf.predictors._io import read_model_file

__all__ = ["load"]


def load(path, *, drop_adapted: bool = False):
    """Read a predictor written by ``save``; raises :class:`ModelFileError` for anything else.

    Files of the previous format (1) load too. Their adapted devices cannot be converted
    (format 2 keeps each strategy's leave-one-out residuals, which format 1 never stored):
    such a file raises :class:`ModelFileError` unless ``drop_adapted=True``, which loads the
    training devices only, so the devices can be adapted again from their measurements.
    """
    from edgeperf.predictors._joint import JointPredictor
    from edgeperf.predictors._perdevice import PerDevicePredictor

    meta, arrays = read_model_file(path)
    types = {"JointPredictor": JointPredictor, "PerDevicePredictor": PerDevicePredictor}
    kind = meta.get("predictor_type")
    cls = types.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ModelFileError(f"{path}: unknown predictor type {kind!r:.80}; expected one of {sorted(types)}")
    try:
        if meta["format_version"] == 1:
            meta = _upgrade_format_1(meta, path, drop_adapted)
        params = meta["params"]
        if not isinstance(params, dict):
            raise ModelFileError(f"params: expected a JSON object, got {type(params).__name__}")
        return cls(**params)._set_state(meta, arrays)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except UnknownNameError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(f"{path}: model metadata incomplete or inconsistent ({type(exc).__name__}: {exc})") from None


def _upgrade_format_1(meta: dict, path, drop_adapted: bool) -> dict:
    """Format-1 metadata in the format-2 layout (the arrays' names did not change)."""
    meta = dict(meta)
    if meta["predictor_type"] == "PerDevicePredictor":
        meta["models"] = {d: {**e, "key": meta["model_keys"][d]} for d, e in meta["models"].items()}
        return meta
    params = meta["device_params"]
    adapted = [d for d, p in params.items() if p.get("kind") != "trained"]
    if adapted and not drop_adapted:
        raise ModelFileError(
            f"written by edgeperf {meta.get('edgeperf_version', '?')} in model format 1, whose adapted devices "
            f"({', '.join(adapted)}) cannot be converted; load it with "
            "edgeperf.predictors.load(path, drop_adapted=True) and adapt them again from their measurements "
            "(or re-run `edgeperf adapt`), then save"
        )
    means = meta["static_means"]
    trained = {}
    for d, p in params.items():
        if d in adapted:
            continue
        # format 1 stored unknown static features as NaN; format 2 stores what the embedding uses
        static = [v if not (isinstance(v, float) and math.isnan(v)) else m for v, m in zip(p["static"], means)]
        trained[d] = {"signature": p["signature"], "static": static, "n_train": p["n_train"]}
    meta["device_params"] = trained
    meta["devices"] = [d for d in meta["devices"] if d not in adapted]
    meta["adapted"] = {}
    return meta
