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

from edgeperf.bespoke._data import as_batches, batch_indices, channels_last
from edgeperf.errors import InvalidParameterError

__all__ = ["DistillConfig", "distill", "reconstruct_pruned", "fidelity", "block_drops", "kd_finetune", "freeze_batchnorm", "params_of"]


@dataclass(frozen=True)
class DistillConfig:
    epochs: int = 2
    batch_size: int = 16
    lr: float = 1e-3
    group_size: int = 256  # alternatives trained together (memory bound)
    probe_images: int = 32  # held-out images the before/after MSE is measured on
    seed: int = 0
    reconstruct: bool = True  # least-squares refit of pruned blocks' 1x1 consumers before training

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1 or self.group_size < 1 or self.probe_images < 1 or not self.lr > 0:
            raise InvalidParameterError(f"expected epochs >= 0, batch_size >= 1, group_size >= 1, lr > 0; got {self}")


def nhwc(module: nn.Module) -> nn.Module:
    """``module`` with its 4-d weights in the channels-last order of :func:`channels_last` batches
    (in place: shared parameters stay shared)."""
    return module.to(memory_format=torch.channels_last)


def _no_progress(*_a, **_k):
    return None


def distill(graph, alternatives, cut_of, images: torch.Tensor, config: DistillConfig = DistillConfig(), *,
            held_out: torch.Tensor | None = None, progress=_no_progress) -> dict[str, dict]:
    """Train each alternative's module to map the teacher's activation at its block input to the
    one at its block output. ``cut_of(alt) -> (start, end)``. Returns per alternative
    ``{"mse_before", "mse_after"}`` on ``held_out`` (default: the training images)."""
    probe = (images if held_out is None else held_out)[: config.probe_images]
    report = {a.id: {"mse_before": _mse(graph, a, cut_of(a), probe, config.batch_size)} for a in alternatives}
    if config.reconstruct:
        pruned = [a for a in alternatives if a.kind == "pruned"]
        reconstruct_pruned(graph, pruned, cut_of, images, config.batch_size)
        for a in pruned:
            report[a.id]["mse_reconstructed"] = _mse(graph, a, cut_of(a), probe, config.batch_size)
    for g in range(0, len(alternatives), config.group_size):
        group = alternatives[g : g + config.group_size]
        cuts = sorted({c for a in group for c in cut_of(a)})
        where = {c: i for i, c in enumerate(cuts)}
        acts_of = nhwc(graph.multi_output(cuts).eval())
        for a in group:
            nhwc(a.module)
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


#: Ridge of the least-squares refit, relative to the mean diagonal of the Gram matrix.
_RIDGE = 1e-3


def _is_pointwise(m) -> bool:
    return isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.groups == 1 and m.stride == (1, 1)


@torch.no_grad()
def reconstruct_pruned(graph, alternatives, cut_of, images: torch.Tensor, batch_size: int = 32) -> None:
    """Refit the 1x1 conv that consumes each pruned chain by least squares, so that from the kept
    channels it reproduces the teacher's output of that conv on the training images (channel
    pruning with reconstruction, He et al. 2017; ThiNet). Closed form, one pass over the images per
    chain: a far better start for distillation than the teacher's weights sliced."""
    from edgeperf.bespoke._prune import prunable_chains

    work = []  # (alternative, teacher block, chain consumers in graph order)
    for a in alternatives:
        s, e = cut_of(a)
        teacher_block = graph.submodule(s, e).eval()
        # A consumer that also produces a pruned chain has lost output channels: left to distillation.
        consumers = [c.consumer for c in prunable_chains(a.module)
                     if _is_pointwise(a.module.get_submodule(c.consumer))
                     and a.module.get_submodule(c.consumer).out_channels == teacher_block.get_submodule(c.consumer).out_channels]
        if consumers:
            work.append((a, teacher_block, consumers))
    if not work:
        return
    acts_of = graph.multi_output(sorted({cut_of(a)[0] for a, _, _ in work})).eval()
    where = {c: i for i, c in enumerate(sorted({cut_of(a)[0] for a, _, _ in work}))}
    for step in range(max(len(c) for _, _, c in work)):  # chain by chain: later inputs see earlier refits
        jobs = [(a, t, c[step]) for a, t, c in work if step < len(c)]
        grams = {a.id: None for a, _, _ in jobs}
        for batch in as_batches(images, batch_size):
            acts = acts_of(batch)
            for a, teacher_block, name in jobs:
                pruned_conv, teacher_conv = a.module.get_submodule(name), teacher_block.get_submodule(name)
                z, y = _io_of(a.module.eval(), pruned_conv, "input", acts[where[cut_of(a)[0]]]),                     _io_of(teacher_block, teacher_conv, "output", acts[where[cut_of(a)[0]]])
                if teacher_conv.bias is not None:
                    y = y - teacher_conv.bias
                z, y = _rows(z), _rows(y)
                if pruned_conv.bias is not None:
                    z = torch.cat([z, torch.ones(len(z), 1)], 1)
                g = (z.T @ z, z.T @ y)
                grams[a.id] = g if grams[a.id] is None else (grams[a.id][0] + g[0], grams[a.id][1] + g[1])
        for a, _, name in jobs:
            zz, zy = (m.double() for m in grams[a.id])
            ridge = _RIDGE * zz.diagonal().mean().clamp_min(1e-12)
            w = torch.linalg.solve(zz + ridge * torch.eye(len(zz), dtype=zz.dtype), zy).T.float()  # (out, in [+1])
            conv = a.module.get_submodule(name)
            k = conv.in_channels
            conv.weight.copy_(w[:, :k].reshape(conv.weight.shape))
            if conv.bias is not None:
                conv.bias.copy_(w[:, k])


def _io_of(module, sub, which: str, x):
    got = {}
    hook = sub.register_forward_hook(lambda m, i, o: got.__setitem__("v", i[0] if which == "input" else o))
    try:
        module(x)
    finally:
        hook.remove()
    return got["v"]


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N*H*W, C)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


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
    acts_of = nhwc(graph.multi_output([s, e]).eval())
    nhwc(alt.module).eval()
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
    nhwc(model).eval()
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
    acts_of = nhwc(graph.multi_output(cuts).eval())
    suffix = {e: nhwc(graph.submodule(e, graph.output_cut).eval()) for e in {cut_of(a)[1] for a in alternatives}}
    outs = {a.id: [] for a in alternatives}
    for a in alternatives:
        nhwc(a.module).eval()
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
                hints: tuple[nn.Module, nn.Module] | None = None, hint_weight: float = 1.0,
                teacher_logits: torch.Tensor | None = None, progress=_no_progress) -> list[float]:
    """Knowledge distillation (Hinton et al.): the student matches the teacher's softened outputs.
    Batch norms stay frozen (few images, small batches). SGD with momentum, not Adam: Adam moves
    every weight by about ``lr`` per step even where the gradient is ~0, which on a student that
    already matches the teacher only adds error. Returns the mean loss per epoch.

    ``hints``: ``(student_taps, teacher_taps)``, modules returning ``(activation, ..., logits)`` (the
    student's sharing its weights, see :func:`~edgeperf.bespoke._graph.tap`). Each activation pair
    adds ``hint_weight`` x its MSE over the teacher activation's variance (averaged over pairs) to
    the loss (FitNets-style hints): a dense signal at every replaced block's output, which
    a few hundred images of logits alone do not give.

    ``teacher_logits``: the teacher's logits on ``images`` (row per image), computed once for every
    student of a house instead of a teacher pass per batch (ignored with hints, which need the
    teacher's activations)."""
    if teacher_logits is not None and len(teacher_logits) != len(images):
        raise InvalidParameterError(f"expected teacher_logits with one row per image ({len(images)}), "
                                    f"got {len(teacher_logits)}")
    cached = teacher_logits if hints is None else None
    teacher.eval()
    student_run, teacher_run = hints if hints is not None else (student, teacher)
    nhwc(student_run)
    nhwc(teacher_run).eval()
    opt = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=lr, momentum=FINETUNE_MOMENTUM)
    losses = []
    for epoch in range(epochs):
        total, n = 0.0, 0
        for idx in batch_indices(len(images), batch_size, shuffle=True, seed=seed + 1000 + epoch):
            batch = channels_last(images[idx])
            if cached is not None:
                t = cached[idx]
            else:
                with torch.no_grad():
                    t = teacher_run(batch)
            freeze_batchnorm(student_run.train())
            s = student_run(batch)
            if hints is not None:
                (*s_acts, s), (*t_acts, t) = s, t
            loss = _kl(t / temperature, s / temperature).mean() * temperature**2
            if hints is not None and s_acts:
                loss = loss + hint_weight * sum(F.mse_loss(a, b) / b.var().clamp_min(1e-8)
                                                for a, b in zip(s_acts, t_acts)) / len(s_acts)
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

