"""Model files: one zip holding ``metadata.json`` and ``arrays/<name>.npy``.

No pickle anywhere: metadata is JSON, arrays are loaded with
``allow_pickle=False``, XGBoost boosters are their own JSON (``save_raw``),
MLP weights are plain arrays. This module knows the container only (header,
members, limits); each predictor owns its state (``_get_state`` / ``_set_state``)
and :func:`edgeperf.predictors.load` picks the predictor class from a fixed
whitelist, never from an import path in the file. Any problem raises
:class:`ModelFileError`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from edgeperf.errors import ModelFileError

__all__ = ["write_model_file", "read_model_file", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "edgeperf-model"
#: 2: adapted devices are stored as versioned strategy states (edgeperf.predictors.adapt).
FORMAT_VERSION = 2
_METADATA = "metadata.json"
_UNITS = {"latency_ms": "ms", "energy_mj": "mJ", "power_mw": "mW", "memory_mb": "MB"}


def write_model_file(path, predictor_type: str, params: dict, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write one model file atomically (a temporary file renamed into place); returns the path."""
    from edgeperf._version import __version__

    path = Path(path)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "predictor_type": predictor_type,
        "edgeperf_version": __version__,
        "params": params,
        "unit": _UNITS.get(meta.get("metric")),
    }
    try:
        text = json.dumps({**header, **meta}, indent=1, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"cannot save predictor metadata as JSON: {exc}") from None
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_METADATA, text)
            for k, v in arrays.items():
                buf = io.BytesIO()
                np.save(buf, np.asarray(v), allow_pickle=False)
                zf.writestr(f"arrays/{k}.npy", buf.getvalue())
        os.replace(tmp, path)  # never leave a half-written model under the final name
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_model_file(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, arrays) of a model file; ModelFileError for anything that is not one."""
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
