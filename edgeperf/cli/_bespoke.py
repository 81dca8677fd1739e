"""``edgeperf bespoke``: a lighter model per target from a pretrained teacher and donor networks."""

from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    # Donor names are not listed in --help: the registry imports torch, and `edgeperf` starts without it.
    @app.command("bespoke")
    def bespoke(
        teacher: str = typer.Option(..., help="Pretrained model to make lighter, a donor name such as efficientnet-lite2 "
                                   "(an unknown name lists the registered ones)."),
        donor: List[str] = typer.Option([], help="Donor network, a name as for --teacher (repeatable)."),
        target: List[str] = typer.Option(..., help="Target KIND[:tTHREADS], e.g. onnxruntime:t1 (repeatable)."),
        budget_ratio: List[float] = typer.Option([0.6], help="Latency budget as a fraction of the teacher's (repeatable)."),
        out: str = typer.Option("bespoke-report", "--out", help="Folder for the house, students, report.json and plots."),
        house: Optional[str] = typer.Option(None, help="House folder (default OUT/house); reused when it exists."),
        images: Optional[str] = typer.Option(None, help="Folder of your own images (default: bundled photographs)."),
        resolution: int = typer.Option(128, min=8, help="Input side in pixels (reduced from 224-260 for CPU runs)."),
        max_units: int = typer.Option(2, min=1, help="Most consecutive units (layers/blocks) one replacement spans."),
        prune_ratios: str = typer.Option("0.25,0.5,0.75", help="Pruning ratios of the teacher's own blocks."),
        train_images: int = typer.Option(512, min=8, help="Training crops for block distillation and fine-tuning."),
        held_out_images: int = typer.Option(128, min=8, help="Held-out crops (other photographs) for fidelity."),
        epochs: int = typer.Option(2, min=0, help="Block-distillation epochs."),
        lr: float = typer.Option(1e-3, min=0.0, help="Block-distillation learning rate (Adam)."),
        finetune_lr: float = typer.Option(3e-3, min=0.0, help="Students' KD fine-tuning learning rate (SGD)."),
        finetune_epochs: int = typer.Option(4, min=0, help="KD fine-tuning epochs of each student."),
        hint_weight: float = typer.Option(0.0, min=0.0, help="Weight of the feature hints (MSE at each replaced "
                                          "block's output) in the KD fine-tuning; 0 = logits only."),
        rerank: int = typer.Option(8, min=1, help="Best annealing solutions rebuilt and compared as whole students."),
        channel_mode: List[str] = typer.Option(["select"], help="Donor channel mismatch: select (largest-magnitude "
                                               "channels) and/or conv1x1 (trainable adapters); repeatable."),
        lam: float = typer.Option(1.0, "--lambda", min=0.0, help="Weight of the estimated drop in the search score."),
        baselines: bool = typer.Option(False, help="Also measure uniform pruning and each donor as a whole network."),
        measure_fraction: float = typer.Option(1.0, min=0.01, max=1.0,
                                               help="Alternatives measured per target; the rest predicted from graph features."),
        seed: int = typer.Option(0, help="Seed of every random draw."),
        progress: bool = typer.Option(True, help="Show progress bars."),
    ) -> None:
        """Build a house of alternatives for the teacher's blocks once, then a student per target."""
        from rich.console import Console
        from rich.table import Table

        from edgeperf.bespoke import donors
        from edgeperf.bespoke import RunConfig, run
        from edgeperf.errors import InvalidParameterError

        for name in (teacher, *donor):
            donors.get(name)  # an unknown name: one line listing the known ones

        try:
            ratios = tuple(float(r) for r in prune_ratios.split(",") if r.strip())
        except ValueError:
            raise InvalidParameterError(f"expected --prune-ratios like 0.25,0.5,0.75, got {prune_ratios!r}") from None
        console = Console(stderr=True)
        report = run(
            RunConfig(teacher=teacher, donors=list(donor), targets=list(target), out=out, budget_ratios=list(budget_ratio),
                      resolution=resolution, max_units=max_units, ratios=ratios, n_train=train_images,
                      n_held_out=held_out_images, distill_epochs=epochs, distill_lr=lr, finetune_epochs=finetune_epochs,
                      finetune_lr=finetune_lr, lam=lam, hint_weight=hint_weight, rerank=rerank,
                      channel_modes=tuple(channel_mode),
                      images=images, house=house, baselines=baselines, measure_fraction=measure_fraction, seed=seed,
                      progress=progress),
            log=lambda m: console.print(m),
        )
        table = Table(title=f"Bespoke students of {teacher} ({resolution} px; timings on a shared machine are noisy)")
        for col in ("target", "budget x teacher", "student x teacher", "student ms", "teacher ms", "within",
                    "agreement", "KL", "params M"):
            table.add_column(col, justify="right")
        for name, t in report["targets"].items():
            for s in t["students"]:
                table.add_row(name, f"{s['budget_ratio']:g}", f"{s['relative_latency']:.3f}", f"{s['measured_ms']:.2f}",
                              f"{s['teacher_ms_at_search']:.2f}", "yes" if s["within_budget"] else "NO",
                              f"{s['fidelity']['agreement']:.3f}", f"{s['fidelity']['kl']:.3f}", f"{s['params'] / 1e6:.2f}")
        Console().print(table)
        h = report["house"]
        typer.echo(f"house: {h['alternatives']} alternatives for {h['blocks']} blocks, {h['house_cost_cpu_s'] / 60:.1f} CPU min; "
                   f"report: {out}/report.json")
