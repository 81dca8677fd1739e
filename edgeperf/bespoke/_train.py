"""Training and evaluation: block-wise distillation, fidelity, knowledge-distillation fine-tuning.

Block-wise distillation needs no labels: each alternative of block ``[s, e)`` reads the teacher's
activation at cut ``s`` and learns the teacher's activation at cut ``e`` (MSE). The teacher runs once
per batch for a whole group of alternatives; only one batch of activations lives at a time and at
most ``group_size`` alternatives (with their optimiser state) train together, so memory is bounded
whatever the size of the house.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from edgeperf.bespoke._data import as_batches
from edgeperf.errors import InvalidParameterError

__all__ = ["DistillConfig", "distill", "fidelity", "block_drops", "kd_finetune", "freeze_batchnorm", "params_of"]


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-3
    group_size: int = 256  # alternatives trained together (memory bound)
    probe_images: int = 32  # held-out images the before/after MSE is measured on
    seed: int = 0

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or self.group_size < 1 or self.probe_images < 1 or not self.lr > 0:
            raise InvalidParameterError(f"expected epochs >= 0, batch_size >= 1, group_size >= 1, lr > 0; got {self}")


def _no_progress(*_a, **_k):
    return None


def distill(graph, alternatives, cut_of, images: torch.Tensor, config: DistillConfig = DistillConfig(), *,
            held_out: torch.Tensor | None = None, progress=_no_progress) -> dict[str, dict]:
    """Train each alternative's module to map the teacher's activation at its block input to the
    one at its block output. ``cut_of(alt) -> (start, end)``. Returns per alternative
    ``{"mse_before", "mse_after"}`` on ``held_out`` (default: the training images)."""
    probe = (images if held_out is None else held_out)[: config.probe_images]
    report = {a.id: {"mse_before": _mse(graph, a, cut_of(a), probe, config.batch_size)} for a in alternatives}
    for g in range(0, len(alternatives), config.group_size):
        group = alternatives[g : g + config.group_size]
        cuts = sorted({c for a in group for c in cut_of(a)})
        where = {c: i for i, c in enumerate(cuts)}
        acts_of = graph.multi_output(cuts).eval()
        opts = [torch.optim.Adam([p for p in a.module.parameters() if p.requires_grad], lr=config.lr) for a in group]
        for epoch in range(config.epochs):
            for batch in as_batches(images, config.batch_size, shuffle=True, seed=config.seed + epoch):
                with torch.no_grad():
                    acts = acts_of(batch)
                for a, opt in zip(group, opts):
                    s, e = cut_of(a)
                    a.module.train()
                    loss = F.mse_loss(a.module(acts[where[s]]), acts[where[e]])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                progress(len(group))
        _recalibrate_batchnorm(group, cut_of, acts_of, where, images, config.batch_size)
    for a in alternatives:
        report[a.id]["mse_after"] = _mse(graph, a, cut_of(a), probe, config.batch_size)
    return report


def _batchnorms(module: nn.Module) -> list:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def _recalibrate_batchnorm(group, cut_of, acts_of, where, images, batch_size) -> None:
    """Recompute the batch norms' running statistics as exact averages over the training images:
    after a few hundred steps, momentum-averaged statistics still lag the trained weights."""
    saved = {}
    for a in group:
        for bn in _batchnorms(a.module):
            saved[bn] = bn.momentum
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average
        a.module.train()
    if saved:
        for batch in as_batches(images, batch_size):
            acts = acts_of(batch)
            for a in group:
                a.module(acts[where[cut_of(a)[0]]])
    for bn, momentum in saved.items():
        bn.momentum = momentum
    for a in group:
        a.module.eval()


@torch.no_grad()
def _mse(graph, alt, cuts, images, batch_size) -> float:
    s, e = cuts
    acts_of = graph.multi_output([s, e]).eval()
    alt.module.eval()
    total, n = 0.0, 0
    for batch in as_batches(images, batch_size):
        a_in, a_out, _ = acts_of(batch)
        total += float(F.mse_loss(alt.module(a_in), a_out, reduction="sum"))
        n += a_out.numel()
    return total / n


def _kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per sample, in nats."""
    return (F.softmax(teacher_logits, 1) * (F.log_softmax(teacher_logits, 1) - F.log_softmax(student_logits, 1))).sum(1)


def _metrics(teacher_logits, logits, labels=None) -> dict:
    out = {
        "agreement": float((teacher_logits.argmax(1) == logits.argmax(1)).float().mean()),
        "kl": float(_kl(teacher_logits, logits).mean()),
    }
    if labels is not None:
        out["accuracy"] = float((logits.argmax(1) == labels).float().mean())
    return out


@torch.no_grad()
def _logits(model, images, batch_size) -> torch.Tensor:
    model.eval()
    return torch.cat([model(b) for b in as_batches(images, batch_size)])


def fidelity(model, teacher_logits: torch.Tensor, images: torch.Tensor, *, labels=None, batch_size: int = 32) -> dict:
    """Top-1 agreement with the teacher, KL(teacher || model) in nats (and accuracy with labels)."""
    return _metrics(teacher_logits, _logits(model, images, batch_size), labels)


@torch.no_grad()
def block_drops(graph, alternatives, cut_of, images: torch.Tensor, teacher_logits: torch.Tensor, *,
                labels=None, batch_size: int = 32, progress=_no_progress) -> dict[str, dict]:
    """Fidelity of the teacher with only one block replaced, for every alternative: the teacher
    runs once per batch to the needed cuts, each alternative then runs with the teacher's suffix."""
    cuts = sorted({c for a in alternatives for c in cut_of(a)})
    where = {c: i for i, c in enumerate(cuts)}
    acts_of = graph.multi_output(cuts).eval()
    suffix = {e: graph.submodule(e, graph.output_cut).eval() for e in {cut_of(a)[1] for a in alternatives}}
    outs = {a.id: [] for a in alternatives}
    for a in alternatives:
        a.module.eval()
    for batch in as_batches(images, batch_size):
        acts = acts_of(batch)
        for a in alternatives:
            s, e = cut_of(a)
            outs[a.id].append(suffix[e](a.module(acts[where[s]])))
        progress(1)
    return {k: _metrics(teacher_logits, torch.cat(v), labels) for k, v in outs.items()}


def freeze_batchnorm(model: nn.Module) -> nn.Module:
    """Batch norms (running statistics kept) and dropout in eval mode while the rest trains: with
    a few hundred images, fine-tuning must not re-estimate statistics or drop features."""
    for m in model.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.eval()
    return model


#: SGD momentum and gradient-norm clip of the KD fine-tuning (large logits make its curvature high).
FINETUNE_MOMENTUM = 0.9
FINETUNE_MAX_GRAD_NORM = 1.0


def kd_finetune(student: nn.Module, teacher: nn.Module, images: torch.Tensor, *, epochs: int = 1,
                batch_size: int = 16, lr: float = 1e-4, temperature: float = 2.0, seed: int = 0,
                progress=_no_progress) -> list[float]:
    """Knowledge distillation (Hinton et al.): the student matches the teacher's softened outputs.
    Batch norms stay frozen (few images, small batches). SGD with momentum, not Adam: Adam moves
    every weight by about ``lr`` per step even where the gradient is ~0, which on a student that
    already matches the teacher only adds error. Returns the mean loss per epoch."""
    teacher.eval()
    opt = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=lr, momentum=FINETUNE_MOMENTUM)
    losses = []
    for epoch in range(epochs):
        total, n = 0.0, 0
        for batch in as_batches(images, batch_size, shuffle=True, seed=seed + 1000 + epoch):
            with torch.no_grad():
                t = teacher(batch)
            freeze_batchnorm(student.train())
            s = student(batch)
            loss = _kl(t / temperature, s / temperature).mean() * temperature**2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), FINETUNE_MAX_GRAD_NORM)
            opt.step()
            total, n = total + float(loss.detach()) * len(batch), n + len(batch)
            progress(1)
        losses.append(total / max(1, n))
    student.eval()
    return losses


def params_of(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))

