"""``edgeperf datasets``: list the built-in tables and summarise a table or file."""

from __future__ import annotations

import typer

datasets_app = typer.Typer(
    name="datasets",
    help="Built-in public latency tables and measurement files.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help, as the main app
)


def _resolve(name: str, metric: str | None):
    """A built-in name, else an existing file path; anything else lists the choices."""
    from edgeperf import datasets

    return datasets.open_table(name, metric=metric)


@datasets_app.command("list")
def list_command() -> None:
    """List the built-in datasets: name, space, architectures, devices, citation."""
    from rich.console import Console
    from rich.table import Table

    from edgeperf import datasets

    out = Table(title="edgeperf built-in datasets")
    for col in ("name", "space", "archs", "devices", "metric", "citation"):
        out.add_column(col, overflow="fold")
    for d in datasets.list_builtin():
        out.add_row(d["name"], d["space"], f"{d['n_archs']:,}", str(d["n_devices"]), d["metric"], d["citation"])
    Console(width=160).print(out)


@datasets_app.command("show")
def show_command(
    name: str = typer.Argument(..., help="A built-in dataset name (see 'edgeperf datasets list') or a file path."),
    metric: str = typer.Option(None, "--metric", help="Only this metric (e.g. latency_ms)."),
) -> None:
    """Per device: measurement count, min / median / max and kind."""
    from rich.console import Console
    from rich.table import Table

    table = _resolve(name, metric)
    frame = table.frame
    stats = frame.groupby(["device", "metric"], sort=True)["value"].agg(["count", "min", "median", "max"])
    title = (
        f"{name}: {len(table.archs):,} architectures, {len(table.devices)} devices, "
        f"space {', '.join(table.spaces)}"
    )
    out = Table(title=title)
    for col in ("device", "kind", "metric", "count", "min", "median", "max"):
        out.add_column(col, justify="right" if col in ("count", "min", "median", "max") else "left")
    for (device, metric_name), row in stats.iterrows():
        kind = table.device_spec(device).kind or "-"
        out.add_row(
            device, kind, metric_name, f"{int(row['count']):,}",
            f"{row['min']:.4g}", f"{row['median']:.4g}", f"{row['max']:.4g}",
        )
    Console(width=160).print(out)


def register(app: typer.Typer) -> None:
    """Add the ``datasets`` command group to ``app``."""
    app.add_typer(datasets_app, name="datasets")
