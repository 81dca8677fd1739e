"""Progress display for long steps (training, the first-call cache), shared by the CLI and the demo.

Predictors report progress through a plain callable (contract C3)::

    progress(done: int, total: int, stage: str) -> None

:func:`progress_callback` gives one that draws a rich bar on stderr (stdout stays free for data).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Iterator

__all__ = ["takes_progress", "progress_callback", "status"]


def takes_progress(fit) -> bool:
    """True when ``fit`` accepts ``progress=`` (contract C3; absent in older predictors)."""
    try:
        return "progress" in inspect.signature(fit).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def progress_callback(description: str, *, enabled: bool = True) -> Iterator:
    """A ``progress(done, total, stage)`` callable drawing a rich bar on stderr (C3)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[stage]}"),
                   console=Console(stderr=True), disable=not enabled, transient=False)
    with bar:
        task = bar.add_task(description, total=None, stage="")

        def progress(done: int, total: int, stage: str) -> None:
            bar.update(task, completed=done, total=total, stage=stage)

        yield progress


@contextmanager
def status(message: str, *, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr for a step whose length is unknown (loading, the first-call cache)."""
    if not enabled:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
