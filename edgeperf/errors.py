"""One exception tree for everything edgeperf raises on purpose.

Every message says what was expected, what came instead and, where it helps,
what to do about it. Catch :class:`EdgePerfError` to catch them all.
"""

from __future__ import annotations

__all__ = [
    "EdgePerfError",
    "ArchitectureError",
    "DataValidationError",
    "DatasetNotFoundError",
    "UnknownNameError",
    "UnknownDeviceError",
    "NotFittedError",
    "ModelFileError",
    "ProfilingError",
    "DeviceUnavailableError",
    "EnergyMeterUnavailableError",
    "AdaptationError",
    "InvalidParameterError",
    "FileAccessError",
    "FileLockedError",
    "FarmError",
    "ObjectiveError",
    "ObjectiveUnavailableError",
    "DesignerFileError",
    "ExtrapolationWarning",
    "BespokeError",
    "UntraceableModelError",
    "IncompatibleDonorError",
    "BudgetInfeasibleError",
]

import difflib

#: Close matches suggested for a misspelt device name.
_MAX_SUGGESTIONS = 3


class EdgePerfError(Exception):
    """Base class of every error edgeperf raises on purpose."""


class UnknownNameError(EdgePerfError, KeyError):
    """A name looked up in a registry (space, profiler, dataset, ...) is not registered."""

    def __init__(self, kind: str, name: str, known):
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; expected one of: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ArchitectureError(EdgePerfError, ValueError):
    """An architecture string or object does not belong to the search space."""


class DataValidationError(EdgePerfError, ValueError):
    """A measurement file or table is malformed; the message names file, row and field."""

    def __init__(self, message: str, *, path=None, row=None, field=None):
        self.path, self.row, self.field = path, row, field
        where = []
        if path is not None:
            where.append(f"file {path}")
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__((", ".join(where) + ": " if where else "") + message)


class DatasetNotFoundError(UnknownNameError):
    """A built-in dataset name is not known."""


class UnknownDeviceError(EdgePerfError, KeyError):
    """A device was asked for that the predictor or table does not know."""

    def __init__(self, device: str, known, hint: str = ""):
        self.device, self.known = device, sorted(known)
        self.suggestions = difflib.get_close_matches(str(device), self.known, n=_MAX_SUGGESTIONS)
        close = f"did you mean {' or '.join(map(repr, self.suggestions))}? " if self.suggestions else ""
        shown = ", ".join(self.known[:30]) + (" ..." if len(self.known) > 30 else "")
        super().__init__(f"unknown device {device!r}; {close}known devices: {shown}. {hint}".strip())

    def __str__(self) -> str:
        return self.args[0]



class ModelFileError(EdgePerfError, ValueError):
    """A saved model file is corrupted, truncated, foreign or of an incompatible version."""


class ProfilingError(EdgePerfError, RuntimeError):
    """A measurement failed; ``raw_output`` carries what the tool printed, if anything."""

    def __init__(self, message: str, *, raw_output: str | None = None):
        self.raw_output = raw_output
        if raw_output:
            tail = raw_output[-2000:]
            message = f"{message}\n--- raw output (last {len(tail)} chars) ---\n{tail}"
        super().__init__(message)


class DeviceUnavailableError(ProfilingError):
    """The device to profile is absent or went away (phone unplugged, runtime missing)."""


class EnergyMeterUnavailableError(EdgePerfError, RuntimeError):
    """No energy sensor of the requested kind is present on this machine."""


class AdaptationError(EdgePerfError, ValueError):
    """Few-shot adaptation or proxy ranking got too few or degenerate target measurements."""


class InvalidParameterError(EdgePerfError, ValueError):
    """A setting (protocol, predictor or CLI option) is outside its valid range."""


class FileAccessError(EdgePerfError, OSError):
    """A file or folder cannot be read or written (missing, a directory, no permission, a /proc file)."""

    def __init__(self, path, action: str, exc: OSError | None = None):
        self.path = path
        reason = (exc.strerror or type(exc).__name__) if exc is not None else "not possible"
        super().__init__(f"cannot {action} {path}: {reason}; expected a path you may {action.split()[0]}")

    def __str__(self) -> str:
        return self.args[0]


class FileLockedError(EdgePerfError, RuntimeError):
    """Another process is writing the same measurement file (one writer per file)."""


class FarmError(EdgePerfError, RuntimeError):
    """A device farm cannot run: no scheduler, no device, or a device claimed by two workers."""


class ObjectiveError(EdgePerfError, ValueError):
    """An optimisation objective cannot score the architectures asked for (wrong space, gaps)."""


class ObjectiveUnavailableError(EdgePerfError, RuntimeError):
    """An objective needs an optional package or data source that is not installed."""


class DesignerFileError(ModelFileError):
    """A saved designer file is corrupted, foreign or does not match the space it names."""


class ExtrapolationWarning(UserWarning):
    """A prediction far outside the training data (e.g. a model with many times the largest MACs seen)."""


class BespokeError(EdgePerfError, ValueError):
    """Bespoke (block-level model optimisation) got a model, donor, house or budget it cannot use."""


class UntraceableModelError(BespokeError):
    """A torch model could not be traced by torch.fx into a graph of blocks."""


class IncompatibleDonorError(BespokeError):
    """A donor network offers no block whose spatial down-sampling matches any block of the teacher."""


class BudgetInfeasibleError(BespokeError):
    """No combination of alternatives in the house meets the latency budget."""


def __getattr__(name: str):
    # NotFittedError also subclasses scikit-learn's; built on first use so that importing
    # edgeperf (and every error class) does not import scikit-learn (about 1-3 s).
    if name == "NotFittedError":
        from sklearn.exceptions import NotFittedError as _SklearnNotFittedError

        cls = type(
            "NotFittedError",
            (EdgePerfError, _SklearnNotFittedError),
            {"__doc__": "A predictor was used before ``fit`` (also a scikit-learn NotFittedError).",
             "__module__": __name__},
        )
        globals()["NotFittedError"] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
