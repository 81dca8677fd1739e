"""Model files: one zip holding ``metadata.json`` and ``arrays/<name>.npy``.

No pickle anywhere: metadata is JSON, arrays are loaded with
``allow_pickle=False``, XGBoost boosters are their own JSON (``save_raw``),
MLP weights are plain arrays. Loading checks the format name and version,
the predictor type (a fixed whitelist, never an import path from the file) and
every referenced array; any problem raises :class:`ModelFileError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from edgeperf.errors import ModelFileError

__all__ = ["save_predictor", "load", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "edgeperf-model"
FORMAT_VERSION = 1
_METADATA = "metadata.json"
_UNITS = {"latency_ms": "ms", "energy_mj": "mJ", "power_mw": "mW", "memory_mb": "MB"}


def _regressor_entry(key: str, reg, arrays: dict) -> dict:
    from edgeperf.predictors._regressors import regressor_name

    name = regressor_name(reg)
    meta, arrs = reg._export_state()
    for k, v in arrs.items():
        arrays[f"{key}/{k}"] = np.asarray(v)
    return {"type": name, "params": _jsonable_params(reg.get_params()), "meta": meta, "arrays": sorted(arrs)}


def _jsonable_params(params: dict) -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except TypeError:
            raise ModelFileError(
                f"cannot save parameter {k}={v!r} without pickle; use a model name such as 'xgboost' or 'mlp'"
            ) from None
        out[k] = v
    return out


def save_predictor(pred, path) -> Path:
    from edgeperf._version import __version__
    from edgeperf.predictors._joint import JointPredictor

    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "predictor_type": type(pred).__name__,
        "edgeperf_version": __version__,
        "params": _jsonable_params(pred.get_params()),
        "space": pred.space_,
        "encoding": pred.encoding_,
        "metric": pred.metric_,
        "unit": _UNITS.get(pred.metric_),
        "devices": list(pred.devices_),
        "n_features": pred.n_features_,
        "training": pred.training_,
    }
    if isinstance(pred, JointPredictor):
        meta.update(
            reference_set=pred.reference_set,
            reference_archs=list(pred.reference_archs_),
            train_devices=list(pred.train_devices_),
            device_params=pred.device_params_,
            static_fields=list(pred.static_fields_),
            static_means=list(pred.static_means_),
            prior_noise_var=pred.prior_noise_var_,
            model=_regressor_entry("model", pred.model_, arrays),
        )
        arrays["prior_mean"] = pred.prior_mean_
        arrays["prior_cov"] = pred.prior_cov_
    else:
        meta["models"] = {d: _regressor_entry(f"models/{i}", m, arrays) for i, (d, m) in enumerate(pred.models_.items())}
        meta["model_keys"] = {d: f"models/{i}" for i, d in enumerate(pred.models_)}
    try:
        text = json.dumps(meta, indent=1, allow_nan=True)
    except TypeError as exc:
        raise ModelFileError(f"cannot save predictor metadata as JSON: {exc}") from None
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_METADATA, text)
        for k, v in arrays.items():
            buf = io.BytesIO()
            np.save(buf, v, allow_pickle=False)
            zf.writestr(f"arrays/{k}.npy", buf.getvalue())
    os.replace(tmp, path)  # never leave a half-written model under the final name
    return path


def _read(path) -> tuple[dict, dict]:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"expected an edgeperf model file, but {path} does not exist or is not a file")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not an edgeperf model file (expected a zip written by predictor.save(); "
            "the file is foreign, corrupted or truncated)"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if _METADATA not in names:
                raise ModelFileError(f"{path}: zip without {_METADATA}; not an edgeperf model file")
            try:
                meta = json.loads(zf.read(_METADATA).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelFileError(f"{path}: {_METADATA} is not valid JSON ({exc}); the file is corrupted") from None
            if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
                got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
                raise ModelFileError(f"{path}: expected format {FORMAT_NAME!r}, got {got!r}; not an edgeperf model")
            if meta.get("format_version") != FORMAT_VERSION:
                raise ModelFileError(
                    f"{path}: expected model format version {FORMAT_VERSION}, got {meta.get('format_version')!r}; "
                    "retrain or use the edgeperf version that wrote it "
                    f"({meta.get('edgeperf_version', 'unknown')})"
                )
            arrays = {}
            for n in names:
                if n.startswith("arrays/") and n.endswith(".npy"):
                    try:
                        arrays[n[len("arrays/") : -len(".npy")]] = np.load(io.BytesIO(zf.read(n)), allow_pickle=False)
                    except ValueError as exc:
                        raise ModelFileError(f"{path}: array {n} cannot be read without pickle: {exc}") from None
    except (zipfile.BadZipFile, EOFError, OSError, zipfile.LargeZipFile) as exc:
        raise ModelFileError(f"{path}: corrupted or truncated model file ({exc})") from None
    return meta, arrays


def _load_regressor(entry: dict, key: str, arrays: dict):
    from edgeperf.predictors._regressors import REGRESSOR_NAMES

    cls = REGRESSOR_NAMES.get(entry.get("type"))
    if cls is None:
        raise ModelFileError(f"unknown regressor type {entry.get('type')!r}; expected one of {sorted(REGRESSOR_NAMES)}")
    params = dict(entry.get("params", {}))
    if "hidden_layer_sizes" in params:
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        reg = cls(**params)
        mine = {k: arrays[f"{key}/{k}"] for k in entry["arrays"]}
    except (TypeError, KeyError) as exc:
        raise ModelFileError(f"model entry {key!r} is incomplete or has unexpected fields: {exc}") from None
    return reg._import_state(entry["meta"], mine)


def load(path):
    """Read a predictor written by ``save``; raises :class:`ModelFileError` for anything else."""
    from edgeperf.predictors._joint import JointPredictor
    from edgeperf.predictors._perdevice import PerDevicePredictor

    meta, arrays = _read(path)
    types = {"JointPredictor": JointPredictor, "PerDevicePredictor": PerDevicePredictor}
    cls = types.get(meta.get("predictor_type"))
    if cls is None:
        raise ModelFileError(f"{path}: unknown predictor type {meta.get('predictor_type')!r}; expected one of {sorted(types)}")
    try:
        params = meta["params"]
        pred = cls(**params)
        pred.space_, pred.encoding_, pred.metric_ = meta["space"], meta["encoding"], meta["metric"]
        pred.devices_ = list(meta["devices"])
        pred.n_features_ = int(meta["n_features"])
        pred.training_ = meta["training"]
        if cls is JointPredictor:
            pred.reference_archs_ = list(meta["reference_archs"])
            pred.train_devices_ = list(meta["train_devices"])
            pred.device_params_ = meta["device_params"]
            pred.static_fields_ = list(meta["static_fields"])
            pred.static_means_ = list(meta["static_means"])
            pred.prior_noise_var_ = float(meta["prior_noise_var"])
            pred.prior_mean_, pred.prior_cov_ = arrays["prior_mean"], arrays["prior_cov"]
            pred.model_ = _load_regressor(meta["model"], "model", arrays)
            if set(pred.device_params_) != set(pred.devices_):
                raise ModelFileError(f"{path}: device list and device parameters disagree; the file is corrupted")
        else:
            keys = meta["model_keys"]
            pred.models_ = {d: _load_regressor(meta["models"][d], keys[d], arrays) for d in pred.devices_}
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: model metadata incomplete or inconsistent ({type(exc).__name__}: {exc})") from None
    from edgeperf import spaces
    from edgeperf.errors import UnknownNameError

    try:
        spaces.get(pred.space_)
    except UnknownNameError as exc:
        raise ModelFileError(f"{path}: {exc}") from None
    pred._reset_caches()
    return pred
