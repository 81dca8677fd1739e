"""``edgeperf demo``: the main job end to end on the embedded default."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        out: str = typer.Option("edgeperf-demo", "--out", help="Folder for measurements, report and plot."),
        dataset: str = typer.Option("help-nb201", help="Built-in public dataset to train on."),
        runtime: str = typer.Option("onnxruntime", help="Local runtime that measures this machine."),
        threads: int = typer.Option(1, min=1, help="Runtime threads (1 is the steadiest on a shared VM)."),
        candidates: int = typer.Option(1000, min=10, help="Candidate architectures to rank."),
        check: int = typer.Option(30, min=5, help="Fresh architectures measured to check the predictions."),
        seed: int = typer.Option(0, help="Seed of every random draw."),
        name: str = typer.Option(None, help="Device name for this machine (default: derived from CPU and runtime)."),
    ) -> None:
        """Profile this machine as a new device, train on public data, adapt, rank candidates, check."""
        from edgeperf.demo import DemoConfig, run_demo

        run_demo(
            DemoConfig(
                dataset=dataset,
                runtime=runtime,
                threads=threads,
                candidates=candidates,
                check_samples=check,
                seed=seed,
                out_dir=out,
                device_name=name,
            )
        )
