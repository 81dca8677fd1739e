"""One Bespoke run end to end: build (or reopen) the house, profile the targets, search a student
per target and budget, optionally measure the baselines, write the report. Behind ``edgeperf
bespoke`` and ``benchmarks/bespoke.py``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from edgeperf.bespoke._baselines import donor_baseline, uniform_baseline, uniform_pruning_curve
from edgeperf.bespoke._house import (DEFAULT_RATIOS, DEFAULT_RESOLUTION, DEFAULT_TRAIN_IMAGES, FINETUNE_EPOCHS,
                                     FINETUNE_LR, HINT_WEIGHT, RERANK, House, build_house, load_house)
from edgeperf.bespoke._latency import parse_target
from edgeperf.bespoke._report import plot_target, write_json
from edgeperf.bespoke._train import DistillConfig
from edgeperf.errors import BudgetInfeasibleError, InvalidParameterError

__all__ = ["RunConfig", "run"]


@dataclass
class RunConfig:
    teacher: str
    donors: list[str]
    targets: list[str]
    out: str
    budget_ratios: list[float] = field(default_factory=lambda: [0.6])
    resolution: int = DEFAULT_RESOLUTION
    max_units: int = 2
    ratios: tuple[float, ...] = DEFAULT_RATIOS
    donor_blocks_per_block: int = 1
    n_train: int = DEFAULT_TRAIN_IMAGES
    n_held_out: int = 128
    distill_epochs: int = 2
    distill_lr: float = 1e-3
    finetune_epochs: int = FINETUNE_EPOCHS
    finetune_lr: float = FINETUNE_LR
    hint_weight: float = HINT_WEIGHT  # feature hints at replaced blocks' outputs in the KD fine-tuning
    rerank: int = RERANK  # best annealing sets rebuilt and compared jointly
    channel_modes: tuple[str, ...] = ("select",)
    lam: float = 1.0
    steps: int = 5000
    images: str | None = None  # an image folder instead of the bundled photographs
    house: str | None = None  # house folder (default OUT/house); reused when it exists
    baselines: bool = False  # uniform pruning + each donor as a whole network
    measure_fraction: float = 1.0  # alternatives measured per target; the rest predicted from graph features
    seed: int = 0
    progress: bool = True

    def validate(self) -> None:
        for t in self.targets:
            parse_target(t)
        if not self.targets:
            raise InvalidParameterError("expected at least one --target")
        if any(not 0 < r for r in self.budget_ratios):
            raise InvalidParameterError(f"expected budget ratios > 0, got {self.budget_ratios}")


def _open_house(cfg: RunConfig, log) -> House:
    path = Path(cfg.house or Path(cfg.out) / "house")
    if (path / "house.json").is_file():
        log(f"reusing the house in {path}")
        return load_house(path, data=cfg.images)
    log(f"building the house of {cfg.teacher} with donors {cfg.donors} at {cfg.resolution} px")
    return build_house(
        cfg.teacher, donors=cfg.donors, data=cfg.images, resolution=cfg.resolution, max_units=cfg.max_units,
        ratios=cfg.ratios, channel_modes=cfg.channel_modes, donor_blocks_per_block=cfg.donor_blocks_per_block,
        distill=DistillConfig(epochs=cfg.distill_epochs, lr=cfg.distill_lr, seed=cfg.seed), n_train=cfg.n_train,
        n_held_out=cfg.n_held_out, seed=cfg.seed, path=path, progress=cfg.progress,
    )


def run(cfg: RunConfig, *, log=print) -> dict:
    """Run Bespoke as configured; returns the report (also written to ``OUT/report.json``)."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    house = _open_house(cfg, log)
    house_path = Path(cfg.house or out / "house")
    house.profile(cfg.targets, measure_fraction=cfg.measure_fraction, seed=cfg.seed, progress=cfg.progress)
    house.save(house_path)
    report = {"house": house.summary(), "house_path": str(house_path), "targets": {}}
    for target in cfg.targets:
        name = parse_target(target).name
        lat = house.latency_[name]
        t0 = time.process_time()
        with house.timing(name):  # the teacher loaded once for the target's searches and baselines
            timer_cpu_s = time.process_time() - t0  # that load's cost, a share of each search's
            results, baselines, infeasible = [], [], []
            curve = uniform_pruning_curve(house, name) if cfg.baselines else None
            for ratio in cfg.budget_ratios:
                try:
                    student, r = house.search(target=name, budget_ratio=ratio, lam=cfg.lam, steps=cfg.steps,
                                              finetune_epochs=cfg.finetune_epochs, finetune_lr=cfg.finetune_lr,
                                              hint_weight=cfg.hint_weight, rerank=cfg.rerank, seed=cfg.seed,
                                              progress=cfg.progress)
                except BudgetInfeasibleError as exc:  # one budget out of reach: report it, go on with the others
                    infeasible.append({"budget_ratio": ratio, "error": str(exc)})
                    log(f"{name} budget {ratio:g} x teacher: {exc}")
                    continue
                stem = f"student-{name.replace(':', '-')}-{ratio:g}"
                torch.save(student.state_dict(), out / f"{stem}.pt")
                r["student_state_dict"] = str(out / f"{stem}.pt")
                if cfg.baselines:
                    t0 = time.process_time()
                    r["uniform_pruning"] = uniform_baseline(house, name, r["relative_latency"], curve,
                                                            finetune_epochs=cfg.finetune_epochs,
                                                            finetune_lr=cfg.finetune_lr, hint_weight=cfg.hint_weight,
                                                            seed=cfg.seed)
                    r["uniform_pruning"]["cpu_s"] = time.process_time() - t0
                    baselines.append(r["uniform_pruning"])
                results.append(r)
                log(f"{name} budget {ratio:g} x teacher: student {r['relative_latency']:.3f} x teacher "
                    f"({r['measured_ms']:.2f} ms), agreement {r['fidelity']['agreement']:.3f}, KL {r['fidelity']['kl']:.3f}")
            donors_measured = [donor_baseline(house, d, name) for d in house.donor_names] if cfg.baselines else []
            plot = plot_target(house, name, results, out / f"{name.replace(':', '-')}.png",
                               baselines=baselines + donors_measured)
            report["targets"][name] = {
                "teacher_ms": lat["teacher_ms"], "context_scale": lat["context_scale"], "device": lat["device"],
                "profile_cpu_s": lat["cpu_s"], "timer_cpu_s": timer_cpu_s, "students": results, "infeasible": infeasible,
                "donor_networks": donors_measured,
                "uniform_pruning_relative_latency": {f"{k:g}": v for k, v in (curve or {}).items()}, "plot": str(plot),
            }
    write_json(report, out / "report.json")
    return report
