"""Ready predictors for the built-in tables, so a first prediction needs no training.

>>> from edgeperf.predictors import pretrained
>>> p = pretrained.load("help-nb201")              # doctest: +SKIP  (about a second)
>>> p.predict(arch, device="pixel3")               # doctest: +SKIP

Each model is a :class:`edgeperf.predictors.JointPredictor` with default settings fitted on
the whole built-in table. All of them are made by one command, ``python
scripts/build_pretrained.py``, which also writes ``MANIFEST.json``: the recipe version,
the edgeperf version, the predictor settings and the SHA-256 of the table each model was fitted
on, so :func:`load` can refuse a model built from another version of the data.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from edgeperf.errors import DatasetNotFoundError, ModelFileError

__all__ = ["load", "names", "path", "manifest", "RECIPE_VERSION", "MANIFEST_NAME", "model_file_name"]

#: Bumped whenever the recipe in ``scripts/build_pretrained.py`` changes what a model learns.
RECIPE_VERSION = 1
MANIFEST_NAME = "MANIFEST.json"


def model_file_name(dataset: str) -> str:
    """File name of the shipped model of built-in ``dataset``."""
    return f"{dataset}.v{RECIPE_VERSION}.edgeperf"


def _folder() -> Path:
    return Path(str(resources.files("edgeperf.predictors.pretrained")))


def manifest() -> dict:
    """The build record of the shipped models (empty ``models`` when none were built)."""
    file = _folder() / MANIFEST_NAME
    if not file.is_file():
        return {"recipe_version": RECIPE_VERSION, "models": {}}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{file}: the pretrained-model manifest cannot be read ({exc}); reinstall edgeperf") from None


def names() -> list[str]:
    """Built-in datasets that have a shipped model."""
    return sorted(n for n in manifest().get("models", {}) if (_folder() / model_file_name(n)).is_file())


def dataset_sha256(dataset: str) -> str:
    """SHA-256 of the built-in table file a model is fitted on (recorded in the manifest)."""
    from edgeperf import datasets

    return hashlib.sha256(datasets.data_path(dataset).read_bytes()).hexdigest()


def path(dataset: str) -> Path:
    """Path of the shipped model of ``dataset``; :class:`DatasetNotFoundError` lists those shipped."""
    if dataset not in names():
        raise DatasetNotFoundError("pretrained model (built-in dataset)", dataset, names())
    return _folder() / model_file_name(dataset)


def load(dataset: str):
    """The shipped predictor of built-in ``dataset`` (``help-nb201``, ``help-fbnet``, ``help-ofa-mbv3``).

    Raises :class:`ModelFileError` when the model was built by another recipe version or from
    another version of the table (re-run ``python scripts/build_pretrained.py``).
    """
    from edgeperf.predictors import load as load_model

    file = path(dataset)
    entry = manifest()["models"][dataset]
    if entry.get("recipe_version") != RECIPE_VERSION:
        raise ModelFileError(
            f"{file}: built by recipe version {entry.get('recipe_version')!r}, this edgeperf expects "
            f"{RECIPE_VERSION}; re-run python scripts/build_pretrained.py"
        )
    if entry.get("dataset_sha256") != dataset_sha256(dataset):
        raise ModelFileError(
            f"{file}: fitted on another version of the built-in table {dataset!r}; "
            "re-run python scripts/build_pretrained.py"
        )
    return load_model(file)
