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
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from edgeperf.errors import ModelFileError

__all__ = ["write_model_file", "read_model_file", "FORMAT_NAME", "FORMAT_VERSION"]

FORMAT_NAME = "edgeperf-model"
#: 2: adapted devices are stored as versioned strategy states (edgeperf.predictors.adapt).
FORMAT_VERSION = 2
_METADATA = "metadata.json"
_UNITS = {"latency_ms": "ms", "energy_mj": "mJ", "power_mw": "mW", "memory_mb": "MB"}


#: Format versions this edgeperf reads (older ones are upgraded by the predictors' loader).
READABLE_VERSIONS = (1, FORMAT_VERSION)
#: Largest uncompressed metadata.json (bytes).
MAX_METADATA_BYTES = 64 * 2**20
#: Largest uncompressed array member, and all members together (bytes).
MAX_MEMBER_BYTES = 512 * 2**20
MAX_TOTAL_BYTES = 1024 * 2**20
#: Largest inflation ratio of a member above 1 MiB (XGBoost JSON compresses ~5x; a zip bomb ~1000x).
MAX_COMPRESSION_RATIO = 100
_RATIO_FLOOR_BYTES = 2**20
#: Deepest nesting of metadata.json (ours is < 10 deep).
MAX_JSON_DEPTH = 32
_COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def write_model_file(path, predictor_type: str, params: dict, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write one model file atomically (a temporary file renamed into place); returns the path.

    Nothing is left behind on failure: no ``*.tmp``, and an existing file at ``path`` stays as it was.
    """
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
    if path.is_dir():
        raise ModelFileError(f"cannot save a model to {path}: it is a directory; give a file name")
    tmp = path.with_name(path.name + ".tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(_METADATA, text)
            for k, v in arrays.items():
                buf = io.BytesIO()
                np.save(buf, np.asarray(v), allow_pickle=False)
                zf.writestr(f"arrays/{k}.npy", buf.getvalue())
        os.replace(tmp, path)  # never leave a half-written model under the final name
    except OSError as exc:
        raise ModelFileError(
            f"cannot write the model file {path}: {exc.strerror or exc}; choose a writable path in an existing folder"
        ) from None
    finally:
        try:
            tmp.unlink()
        except OSError:  # already renamed into place, or never created
            pass
    return path


def read_model_file(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(metadata, arrays) of a model file; ModelFileError for anything that is not one.

    Checks the container only: zip integrity, member names, sizes, compression, JSON
    (depth, no NaN in format >= 2), format name and version, pickle-free arrays. The
    predictor's ``_set_state`` checks the content.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"expected an edgeperf model file, but {path} does not exist or is not a file")
    try:
        if not zipfile.is_zipfile(path):
            raise ModelFileError(
                f"{path} is not an edgeperf model file (expected a zip written by predictor.save(); "
                "the file is foreign, corrupted or truncated)"
            )
        with zipfile.ZipFile(path) as zf:
            infos = _checked_members(path, zf)
            meta = _read_metadata(path, zf)
            arrays = {}
            for info in infos:
                if info.filename == _METADATA:
                    continue
                data = _read_member(zf, info, MAX_MEMBER_BYTES)
                try:
                    arrays[info.filename[len("arrays/") : -len(".npy")]] = np.load(io.BytesIO(data), allow_pickle=False)
                except ValueError as exc:
                    raise ModelFileError(f"{path}: array {info.filename} cannot be read without pickle: {exc}") from None
                except (OSError, EOFError, TypeError) as exc:
                    raise ModelFileError(f"{path}: array {info.filename} is not a valid .npy ({exc})") from None
    except ModelFileError:
        raise
    except RecursionError:
        raise ModelFileError(f"{path}: {_METADATA} is nested too deeply; the file is corrupted or hostile") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError,
            RuntimeError, UnicodeDecodeError, OverflowError, zlib.error, struct.error) as exc:
        raise ModelFileError(f"{path}: corrupted or truncated model file ({type(exc).__name__}: {exc})") from None
    return meta, arrays


def _checked_members(path, zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        raise ModelFileError(f"{path}: the zip repeats member names; the file is corrupted or tampered with")
    if _METADATA not in names:
        raise ModelFileError(f"{path}: zip without {_METADATA}; not an edgeperf model file")
    total = 0
    for info in infos:
        n = info.filename
        if n != _METADATA and not (n.startswith("arrays/") and n.endswith(".npy")):
            raise ModelFileError(f"{path}: unexpected member {n!r}; a model file holds metadata.json and arrays/*.npy")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{path}: member {n!r} is encrypted; edgeperf model files never are")
        if info.compress_type not in _COMPRESSIONS:
            raise ModelFileError(
                f"{path}: member {n!r} uses compression method {info.compress_type}; expected stored or deflate"
            )
        limit = MAX_METADATA_BYTES if n == _METADATA else MAX_MEMBER_BYTES
        if info.file_size > limit:
            raise ModelFileError(f"{path}: member {n!r} inflates to {info.file_size} bytes, over the {limit}-byte limit")
        if info.file_size > _RATIO_FLOOR_BYTES and info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1):
            raise ModelFileError(
                f"{path}: member {n!r} inflates {info.file_size // max(info.compress_size, 1)}x; refusing a likely zip bomb"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise ModelFileError(f"{path}: members inflate to {total} bytes in all, over the {MAX_TOTAL_BYTES}-byte limit")
    return infos


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """The member's bytes, never more than ``limit`` whatever its header claims."""
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ModelFileError(f"member {info.filename!r} is larger than the {limit}-byte limit")
    return data


def _read_metadata(path, zf: zipfile.ZipFile) -> dict:
    raw = _read_member(zf, zf.getinfo(_METADATA), MAX_METADATA_BYTES)
    non_finite = []

    def constant(name):  # NaN / Infinity: written by format 1 (device static features), never by format 2
        non_finite.append(name)
        return float(name.replace("Infinity", "inf"))

    try:
        meta = json.loads(raw.decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path}: {_METADATA} is not valid JSON ({exc}); the file is corrupted") from None
    if _depth(meta) > MAX_JSON_DEPTH:
        raise ModelFileError(f"{path}: {_METADATA} is nested deeper than {MAX_JSON_DEPTH}; the file is corrupted")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ModelFileError(f"{path}: expected format {FORMAT_NAME!r}, got {got!r}; not an edgeperf model")
    version = meta.get("format_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise ModelFileError(
            f"{path}: expected model format version {FORMAT_VERSION}, got {version!r}; "
            "retrain, or use the edgeperf version that wrote it "
            f"({meta.get('edgeperf_version', 'unknown')})"
        )
    if version >= 2 and non_finite:
        raise ModelFileError(f"{path}: {_METADATA} holds {non_finite[0]}; the file is corrupted")
    return meta


def _depth(obj, level: int = 0) -> int:
    """Nesting depth of parsed JSON (stops counting past the limit)."""
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(obj, dict):
        return max((_depth(v, level + 1) for v in obj.values()), default=level + 1)
    if isinstance(obj, list):
        return max((_depth(v, level + 1) for v in obj), default=level + 1)
    return level


# ---- content checks shared by the predictors' _set_state -------------------------------------------
def finite_array(arrays: dict, name: str, shape: tuple) -> np.ndarray:
    """``arrays[name]`` as float64, checked: real dtype, ``shape`` (None = any length), all finite."""
    if name not in arrays:
        raise ModelFileError(f"array {name!r} is missing; the file is incomplete")
    a = arrays[name]
    if a.dtype.kind not in "fiu" or a.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, a.shape)):
        raise ModelFileError(f"array {name!r}: expected a real array of shape {shape}, got {a.dtype} {a.shape}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all():
        raise ModelFileError(f"array {name!r} holds NaN or infinite values; the file is corrupted")
    return a


def finite_list(meta: dict, name: str, length: int | None = None) -> list[float]:
    """``meta[name]`` as a list of finite floats of ``length`` (None = any)."""
    v = meta[name]
    if not isinstance(v, list) or (length is not None and len(v) != length):
        raise ModelFileError(f"{name}: expected a list of {length if length is not None else 'some'} numbers, got {v!r:.80}")
    if not all(not isinstance(x, bool) and isinstance(x, (int, float)) and np.isfinite(x) for x in v):
        raise ModelFileError(f"{name}: expected finite numbers, got {v!r:.80}")
    return [float(x) for x in v]


def str_list(meta: dict, name: str) -> list[str]:
    v = meta[name]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ModelFileError(f"{name}: expected a list of strings, got {v!r:.80}")
    return list(v)
