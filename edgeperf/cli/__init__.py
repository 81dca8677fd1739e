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
    # Plain click help: flags shown as flags (rich help prints '<bool>' after each of them).
    rich_markup_mode=None,
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
    from edgeperf.cli import _bespoke, _datasets, _demo, _farm, _optimize, _predict, _profile, _proxy

    for module in (_datasets, _profile, _predict, _proxy, _demo, _farm, _optimize, _bespoke):
        module.register(app)


_register_all()


def _usage(argv: list[str]) -> str:
    """Usage line of the (sub)command named in ``argv``, for errors click raises without one."""
    import typer.main

    cmd, names = typer.main.get_command(app), ["edgeperf"]
    for word in argv:
        sub = getattr(cmd, "commands", {}).get(word)
        if sub is None:
            break
        cmd, names = sub, names + [word]
    ctx = cmd.context_class(cmd, info_name=" ".join(names))
    return f"{cmd.get_usage(ctx)}\nTry '{' '.join(names)} --help' for help.\n"


#: Exit code of every error a user can cause (bad input, bad usage), as click uses for usage errors.
EXIT_USAGE = 2


def main() -> None:
    """Console-script entry point: EdgePerfError becomes a one-line message and exit code 2;
    a usage error (missing option, bad value, no command) the usage and one line, exit code 2;
    an OS error (unwritable output, a directory given as a file) one line, exit code 2."""
    import sys

    from edgeperf.errors import EdgePerfError

    try:
        # Without standalone mode click returns (not raises) the code of a typer.Exit.
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except EdgePerfError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.secho("aborted", fg="red", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg="red", err=True)
        sys.exit(130)
    except typer.TyperException as exc:  # click's UsageError / BadParameter / NoArgsIsHelpError
        if getattr(exc, "ctx", True) is None:  # raised while parsing, before click knew the command
            typer.echo(_usage(sys.argv[1:]), err=True)
        show = getattr(exc, "show", None)
        if show is not None:
            show()  # usage, a hint to --help and the one-line message (help text for no arguments)
        else:
            typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:  # a library path not yet wrapped in FileAccessError: still one line
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        typer.secho(f"error: cannot access{where}: {exc.strerror or exc}", fg="red", err=True)
        sys.exit(EXIT_USAGE)
