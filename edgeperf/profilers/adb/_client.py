"""A small adb client that drives the ``adb`` binary.

Why the binary and not ``adbutils``' socket client: the binary is the one implementation of the
adb protocol every phone setup already trusts, it needs no server management from us, and a
fake ``adb`` executable put first on ``PATH`` exercises exactly the code path a real phone
does (arguments, exit codes, stderr messages). ``adbutils`` would need a fake adb *server*.

The binary is ``$ADB`` if set, else ``adb`` on ``PATH``; every call has a timeout.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from edgeperf.errors import DeviceUnavailableError, ProfilingError
from edgeperf.profilers.adb._parsers import parse_devices, parse_getprop

__all__ = ["AdbClient", "find_adb"]

#: Default seconds one adb call may take (push of a model, a short shell command).
DEFAULT_TIMEOUT_S = 60.0
#: What adb prints when the device went away; mapped to DeviceUnavailableError.
_GONE_RE = re.compile(
    r"device (?:'[^']*' )?not found|device offline|no devices|unauthorized|no emulators", re.IGNORECASE
)


def find_adb(adb_path: str | os.PathLike | None = None) -> str:
    """Path of the adb binary: the argument, else ``$ADB``, else ``adb`` on PATH."""
    candidate = str(adb_path) if adb_path else os.environ.get("ADB") or "adb"
    found = shutil.which(candidate)
    if found is None:
        raise DeviceUnavailableError(
            f"expected the adb binary at {candidate!r} (from the argument, $ADB or PATH), found nothing; "
            "install Android platform-tools (e.g. `apt install adb`) or set ADB=/path/to/adb"
        )
    return found


class AdbClient:
    """Runs adb commands against one device (``-s SERIAL``; the only device when None)."""

    def __init__(self, serial: str | None = None, *, adb_path: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.serial = serial
        self.adb_path = adb_path
        self.timeout_s = float(timeout_s)

    # ---- plumbing -------------------------------------------------------------------------
    def _argv(self, args: Sequence[str]) -> list[str]:
        argv = [find_adb(self.adb_path)]
        if self.serial:
            argv += ["-s", self.serial]
        return argv + [str(a) for a in args]

    def run(self, args: Sequence[str], *, timeout_s: float | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``adb [-s SERIAL] ARGS``; map a missing device and timeouts to edgeperf errors."""
        argv = self._argv(args)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout  # may be bytes even with text=True
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            raise ProfilingError(
                f"adb command {shlex.join(argv[1:])!r} did not finish within {timeout:g} s; "
                "raise the timeout or check the phone is responsive",
                raw_output=out or None,
            ) from None
        text = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0 and _GONE_RE.search(text):
            who = f"device {self.serial!r}" if self.serial else "an Android device"
            raise DeviceUnavailableError(
                f"expected {who} attached over adb, but adb said it is not there (unplugged, offline or "
                "unauthorized); reconnect it, accept the USB-debugging prompt, check `adb devices -l`, "
                "then resume the run",
                raw_output=text,
            )
        if check and proc.returncode != 0:
            raise ProfilingError(
                f"adb command {shlex.join(argv[1:])!r} failed with exit status {proc.returncode}",
                raw_output=text,
            )
        return proc

    # ---- commands -------------------------------------------------------------------------
    def shell(self, command: str | Sequence[str], *, timeout_s: float | None = None, check: bool = True) -> str:
        """Run a shell command on the device and return its stdout. A list is quoted for the
        device's ``sh``; a string is passed as is (so it may use globs and redirections)."""
        cmd = command if isinstance(command, str) else shlex.join([str(c) for c in command])
        return self.run(["shell", cmd], timeout_s=timeout_s, check=check).stdout

    def push(self, local: str | Path, remote: str, *, timeout_s: float | None = None) -> None:
        if not Path(local).exists():
            raise ProfilingError(f"expected a file to push at {local}, found nothing")
        self.run(["push", str(local), remote], timeout_s=timeout_s)

    def pull(self, remote: str, local: str | Path, *, timeout_s: float | None = None) -> Path:
        self.run(["pull", remote, str(local)], timeout_s=timeout_s)
        return Path(local)

    def getprop(self, name: str | None = None) -> dict[str, str] | str:
        """All properties as a dict, or the value of one (``""`` when unset)."""
        if name is None:
            return parse_getprop(self.shell("getprop"))
        return self.shell(["getprop", name]).strip()

    def wait_for_device(self, *, timeout_s: float | None = None) -> None:
        self.run(["wait-for-device"], timeout_s=timeout_s)

    def devices(self) -> list[dict]:
        """``adb devices -l`` as ``[{"serial", "state", "model", ...}]`` (any serial)."""
        argv_client = AdbClient(None, adb_path=self.adb_path, timeout_s=self.timeout_s)
        return parse_devices(argv_client.run(["devices", "-l"]).stdout)
