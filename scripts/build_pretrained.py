"""Build the shipped predictors of edgeperf/predictors/pretrained/ (one command, no manual step).

    python scripts/build_pretrained.py                 # every built-in table
    python scripts/build_pretrained.py help-nb201      # just one

Each model is ``JointPredictor(random_state=0)`` with default settings fitted on the whole
built-in table; ``MANIFEST.json`` records the recipe version, edgeperf version, settings and
the SHA-256 of the table. ``tests/test_reliability.py`` refits help-nb201 the same way and checks
that the predictions match the shipped model's. Re-run after any change to the predictors or the
model-file format, then commit the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgeperf import datasets  # noqa: E402
from edgeperf._version import __version__  # noqa: E402
from edgeperf.predictors import JointPredictor  # noqa: E402
from edgeperf.predictors import pretrained  # noqa: E402

OUT = ROOT / "edgeperf" / "predictors" / "pretrained"
#: The recipe: seed of every model; everything else is JointPredictor's default.
SEED = 0


def fit(dataset: str) -> JointPredictor:
    """The recipe: the default joint predictor on the whole built-in table."""
    return JointPredictor(random_state=SEED).fit(datasets.load(dataset))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", default=datasets.builtin_names(), help="built-in tables (default: all)")
    args = parser.parse_args(argv)
    manifest_file = OUT / pretrained.MANIFEST_NAME
    manifest = pretrained.manifest() if manifest_file.is_file() else {"models": {}}
    manifest["recipe_version"] = pretrained.RECIPE_VERSION
    for name in args.datasets:
        t0 = time.perf_counter()
        p = fit(name)
        for old in OUT.glob(f"{name}.v*.edgeperf"):
            old.unlink()
        file = p.save(OUT / pretrained.model_file_name(name))
        manifest["models"][name] = {
            "file": file.name,
            "recipe_version": pretrained.RECIPE_VERSION,
            "edgeperf_version": __version__,
            "params": {k: v for k, v in p.get_params().items() if isinstance(v, (str, int, float, type(None)))},
            "dataset_sha256": pretrained.dataset_sha256(name),
            "devices": list(p.devices_),
            "space": p.space_,
        }
        manifest_file.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"{name}: {len(p.devices_)} devices, {file.stat().st_size / 1e6:.1f} MB, "
              f"{time.perf_counter() - t0:.0f} s -> {file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
