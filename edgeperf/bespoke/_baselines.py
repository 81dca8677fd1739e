"""Baselines a Bespoke student is compared with, measured the same way on the same target:
uniform channel pruning of the teacher (same KD fine-tuning as the students) and whole smaller
pretrained networks (as shipped; they are ImageNet classifiers already)."""

from __future__ import annotations

import torch

from edgeperf.bespoke import donors as donor_registry
from edgeperf.bespoke._latency import ModuleLatency
from edgeperf.bespoke._prune import uniform_prune
from edgeperf.bespoke._train import fidelity, kd_finetune, params_of

__all__ = ["UNIFORM_RATIOS", "uniform_pruning_curve", "uniform_baseline", "donor_baseline"]

#: Pruning ratios whose latency is measured to find the one matching a student's latency.
UNIFORM_RATIOS = (0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def uniform_pruning_curve(house, target: str, ratios=UNIFORM_RATIOS) -> dict[float, float]:
    """Measured latency of the uniformly pruned teacher at each ratio, relative to the teacher
    measured in the same minute (absolute milliseconds drift with the load of a shared machine)."""
    example = torch.zeros(1, *house.input_shape)
    timer = ModuleLatency(target)
    try:
        teacher_ms = timer.ms(house.teacher, house.input_shape)
        return {r: timer.ms(uniform_prune(house.teacher, r, example), house.input_shape) / teacher_ms for r in ratios}
    finally:
        timer.close()


def uniform_baseline(house, target: str, relative_latency: float, curve: dict[float, float], *,
                     finetune_epochs: int = 1, finetune_lr: float = 3e-4, seed: int = 0) -> dict:
    """The uniformly pruned teacher at the least pruning whose latency relative to the teacher is
    at most ``relative_latency`` (else the fastest measured), fine-tuned by KD like the students."""
    fits = [r for r, rel in curve.items() if rel <= relative_latency]
    ratio = min(fits) if fits else min(curve, key=curve.get)
    model = uniform_prune(house.teacher, ratio, torch.zeros(1, *house.input_shape))
    data = house._need_data()
    before = fidelity(model, house.teacher_logits(), data.held_out, labels=data.held_out_labels)
    if finetune_epochs:
        kd_finetune(model, house.teacher, data.train, epochs=finetune_epochs, lr=finetune_lr, seed=seed)
    return {
        "name": f"uniform pruning {ratio:.2f}", "ratio": ratio, "relative_latency": curve[ratio], "params": params_of(model),
        "fidelity_before_finetune": before,
        "fidelity": fidelity(model, house.teacher_logits(), data.held_out, labels=data.held_out_labels),
    }


def donor_baseline(house, name: str, target: str) -> dict:
    """A whole pretrained network at the house's resolution, measured and scored as shipped."""
    model = donor_registry.get(name)().build(resolution=house.resolution)
    data = house._need_data()
    timer = ModuleLatency(target)
    try:
        teacher_ms = timer.ms(house.teacher, house.input_shape)
        ms = timer.ms(model, house.input_shape)
    finally:
        timer.close()
    return {"name": name, "measured_ms": ms, "relative_latency": ms / teacher_ms, "params": params_of(model),
            "fidelity": fidelity(model, house.teacher_logits(), data.held_out, labels=data.held_out_labels)}
