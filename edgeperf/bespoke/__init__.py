"""Bespoke: make a pretrained model lighter for each target by swapping its blocks for blocks of
other pretrained networks or for pruned copies of its own (Lee and Moon, AAAI'23).

>>> import edgeperf as ep
>>> house = ep.bespoke.build_house("efficientnet-lite2", donors=["mobilenet-v2"], path="house/")  # doctest: +SKIP
>>> house.profile(targets=["onnxruntime:t1"])                                                    # doctest: +SKIP
>>> student, report = house.search(target="onnxruntime:t1", budget_ratio=0.6)                    # doctest: +SKIP

Steps: :class:`BlockGraph` (torch.fx blocks between cut points) -> alternatives (donor blocks of
matching spatial down-sampling with channel selection or 1x1 adapters; pruned teacher blocks) ->
block-wise distillation -> per-alternative latency (project profilers) and fidelity drop ->
per-target simulated annealing, student build, KD fine-tuning and real measurement.
Donors are a plug-in family: :mod:`edgeperf.bespoke.donors`.
"""

from __future__ import annotations

import importlib

__all__ = [
    "build_house", "load_house", "House", "BlockGraph", "Block", "Alternative", "ImageSet", "DistillConfig",
    "Candidate", "anneal", "min_latency", "compatible", "prune", "prunable_chains", "parse_target", "ModuleLatency",
    "bundled_images", "donors", "uniform_prune", "RunConfig", "run",
]

_LAZY = {
    "build_house": "_house", "load_house": "_house", "House": "_house",
    "BlockGraph": "_graph", "Block": "_graph",
    "Alternative": "_alternatives", "compatible": "_alternatives",
    "ImageSet": "_data", "bundled_images": "_data",
    "DistillConfig": "_train",
    "Candidate": "_search", "anneal": "_search", "min_latency": "_search",
    "prune": "_prune", "prunable_chains": "_prune", "uniform_prune": "_prune",
    "parse_target": "_latency", "ModuleLatency": "_latency",
    "RunConfig": "_run", "run": "_run",
}


def __getattr__(name: str):
    if name == "donors":
        return importlib.import_module("edgeperf.bespoke.donors")
    if name in _LAZY:
        return getattr(importlib.import_module(f"edgeperf.bespoke.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'edgeperf.bespoke' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
