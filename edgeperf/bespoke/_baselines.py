"""Baselines a Bespoke student is compared with, measured the same way on the same target:
uniform channel pruning of the teacher (same KD fine-tuning as the students) and whole smaller
pretrained networks (as shipped; they are ImageNet classifiers already)."""

from __future__ import annotations

import torch

from edgeperf.bespoke import donors as donor_registry
from edgeperf.bespoke._house import FINETUNE_BATCH, FINETUNE_EPOCHS, FINETUNE_LR, HINT_WEIGHT
from edgeperf.bespoke._prune import uniform_prune
from edgeperf.bespoke._train import fidelity, kd_finetune, params_of

__all__ = ["UNIFORM_RATIOS", "uniform_pruning_curve", "uniform_baseline", "donor_baseline"]

#: Pruning ratios whose latency is measured to find the one matching a student's latency.
UNIFORM_RATIOS = (0.25, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _relative(target: str, models: dict, house) -> dict:
    """Each model's latency relative to the teacher, timed alternately with it
    (:meth:`ModuleLatency.relative`: absolute milliseconds drift with the load of a shared machine)."""
    with house.timing(target) as timer:  # the teacher loaded once for every model's rounds
        return {k: timer.relative(m, house.teacher, house.input_shape, key=f"baseline-{k}", reference_key="teacher")
                for k, m in models.items()}


def uniform_pruning_curve(house, target: str, ratios=UNIFORM_RATIOS) -> dict[float, float]:
    """Measured latency of the uniformly pruned teacher at each ratio, relative to the teacher."""
    example = torch.zeros(1, *house.input_shape)
    models = {r: uniform_prune(house.teacher, r, example) for r in ratios}
    return {r: v["ratio"] for r, v in _relative(target, models, house).items()}


def uniform_baseline(house, target: str, relative_latency: float, curve: dict[float, float], *,
                     finetune_epochs: int = FINETUNE_EPOCHS, finetune_lr: float = FINETUNE_LR,
                     hint_weight: float = HINT_WEIGHT, seed: int = 0) -> dict:
    """The uniformly pruned teacher at the least pruning whose latency relative to the teacher is
    at most ``relative_latency`` (else the fastest measured), fine-tuned by KD like the students
    (same epochs and learning rate, hints at every cut point: every block of it changed)."""
    fits = [r for r, rel in curve.items() if rel <= relative_latency]
    ratio = min(fits) if fits else min(curve, key=curve.get)
    model = uniform_prune(house.teacher, ratio, torch.zeros(1, *house.input_shape))
    data = house._need_data()
    before = fidelity(model, house.teacher_logits(), data.held_out, labels=data.held_out_labels)
    if finetune_epochs:
        kd_finetune(model, house.teacher, data.train, epochs=finetune_epochs, batch_size=FINETUNE_BATCH,
                    lr=finetune_lr, seed=seed, teacher_logits=house.teacher_logits("train"),
                    hints=house.hints(model) if hint_weight else None, hint_weight=hint_weight)
    return {
        "name": f"uniform pruning {ratio:.2f}", "ratio": ratio, "relative_latency": curve[ratio], "params": params_of(model),
        "fidelity_before_finetune": before,
        "fidelity": fidelity(model, house.teacher_logits(), data.held_out, labels=data.held_out_labels),
    }


def donor_baseline(house, name: str, target: str) -> dict:
    """A whole pretrained network at the house's resolution, measured and scored as shipped."""
    model = donor_registry.get(name)().build(resolution=house.resolution)
    data = house._need_data()
    rel = _relative(target, {name: model}, house)[name]
    return {"name": name, "measured_ms": rel["ms"], "relative_latency": rel["ratio"], "params": params_of(model),
            "fidelity": fidelity(model, house.teacher_logits(), data.held_out, labels=data.held_out_labels)}
