"""One writer per measurement file: an advisory lock file ``<file>.lock`` next to it.

The lock is an ``fcntl.flock`` on the lock file, so the kernel drops it when its process dies
(kill -9 included): a lock file left behind by a dead process is simply taken over. The file
holds the owner's pid and host so the error of a second writer can name it. Where ``fcntl`` is
missing (Windows) the lock file is created exclusively (O_EXCL) and one whose pid is no longer
running on this host is treated as stale and replaced.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from edgeperf.errors import FileAccessError, FileLockedError

__all__ = ["FileLock", "lock_path"]

LOCK_SUFFIX = ".lock"


def lock_path(path: str | os.PathLike) -> Path:
    """``<file>.lock`` next to ``path``."""
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class FileLock:
    """Exclusive, non-blocking lock of ``path`` for one writer (a context manager)."""

    def __init__(self, path: str | os.PathLike):
        self.target = Path(path)
        self.path = lock_path(path)
        self._fd: int | None = None

    def _owner(self) -> str:
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace").split()
        except OSError:
            return "another process"
        return f"process {text[0]} on {text[1]}" if len(text) >= 2 else "another process"

    def _refuse(self):
        raise FileLockedError(
            f"{self.target} is being written by {self._owner()} (lock file {self.path}); one writer per file: "
            "wait for that run to finish, or write to another --out. If no such run exists, delete the lock file"
        )

    def acquire(self) -> "FileLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return self._acquire_exclusive_create()
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise FileAccessError(self.path, "write to", exc) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._refuse()
            # The owner before us may have unlinked the file between our open and our flock:
            # then we hold a lock nobody else can see; start again on the current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def _acquire_exclusive_create(self) -> "FileLock":  # pragma: no cover - not POSIX
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self.path.read_text(encoding="utf-8", errors="replace").split()
                stale = len(owner) >= 2 and owner[1] == socket.gethostname() and owner[0].isdigit() \
                    and not _pid_alive(int(owner[0]))
                if not stale:
                    self._refuse()
                self.path.unlink(missing_ok=True)
                continue
            os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
            self._fd = fd
            return self
        self._refuse()

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: see acquire()
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
