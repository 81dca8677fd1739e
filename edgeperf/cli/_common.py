"""Helpers shared by the command groups: model outputs, model inputs, progress bars."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Iterable

from edgeperf.errors import FileAccessError, InvalidParameterError


def is_model_file(path: Path) -> bool:
    """True when ``path`` is an edgeperf model file (a zip with ``metadata.json``)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            return "metadata.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def check_model_out(out: Path, inputs: Iterable[str | os.PathLike], *, force: bool) -> None:
    """Refuse an ``--out`` that is one of the inputs (or a sidecar of one), a folder, or an
    existing file that is not an edgeperf model (unless ``force``): never overwrite measurements."""
    out = Path(out)
    if out.is_dir():
        raise FileAccessError(out, "write to", IsADirectoryError(21, "is a directory"))
    target = out.resolve()
    for item in inputs:
        p = Path(item)
        if p.exists() and target in {p.resolve(), p.resolve().with_name(p.name + ".devices.json")}:
            raise InvalidParameterError(
                f"--out {out} is one of the inputs; writing the model there would destroy the measurements. "
                "Choose another --out"
            )
    if out.exists() and not force and not is_model_file(out):
        raise InvalidParameterError(
            f"--out {out} exists and is not an edgeperf model file; refusing to replace it. "
            "Choose another --out, or pass --force to overwrite it"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FileAccessError(out, "write to", exc) from None
    if not os.access(out.parent, os.W_OK):
        raise FileAccessError(out, "write to", PermissionError(13, "permission denied"))


def load_model(source: str | os.PathLike):
    """A predictor from a model file, or the shipped one of a built-in dataset (``help-nb201``)."""
    from edgeperf.predictors import load
    from edgeperf.predictors import pretrained

    path = Path(source)
    if not path.exists() and str(source) in pretrained.names():
        return pretrained.load(str(source))
    if path.is_dir():
        raise FileAccessError(path, "read", IsADirectoryError(21, "is a directory"))
    if not path.exists() and os.sep not in str(source) and "." not in str(source):
        from edgeperf.errors import DatasetNotFoundError

        raise DatasetNotFoundError("model file or pretrained model", str(source), pretrained.names())
    return load(path)
