"""The ``edgeperf`` command line: a thin typed layer over the library.

Each command group lives in its own private module and adds itself to
:data:`app` through a ``register(app)`` function; this module only wires them.
"""

from __future__ import annotations

import typer

from edgeperf._version import __version__

app = typer.Typer(
    name="edgeperf",
    help="Measure, predict and rank DNN latency and energy on many edge devices.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"edgeperf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_callback, is_eager=True, help="Print the version."),
) -> None:
    """edgeperf command line."""


def _register_all() -> None:
    from edgeperf.cli import _bespoke, _datasets, _demo, _predict, _profile, _proxy

    for module in (_datasets, _profile, _predict, _proxy, _demo, _bespoke):
        module.register(app)


_register_all()


def main() -> None:
    """Console-script entry point: EdgePerfError becomes a one-line message and exit code 2."""
    import sys

    from edgeperf.errors import EdgePerfError

    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except EdgePerfError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg="red", err=True)
        sys.exit(130)
