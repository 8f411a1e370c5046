"""An exclusive lock on a run folder for as long as a run writes it.

Two runs given the same ``--output-dir`` would otherwise interleave their checkpoints, ``args.json``
and ``logging.jsonl``. The lock is ``flock`` on ``<folder>/.swiftune.lock``, a file that also names
the holder (pid, host, command, start time) so the refused run can say who has the folder. The
kernel drops the lock when its process dies, so a ``kill -9`` never leaves the folder locked: the
next run finds the dead holder's record, says it takes the folder over, and goes on. A clean exit
deletes the file. Any command that writes a run folder (``sft``, ``rlhf``) takes it the same way::

    with locked_run_folder(output_dir):
        ...
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError

LOCK_NAME = ".swiftune.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the lock file's pid is checked instead
    fcntl = None  # type: ignore[assignment]


class RunFolderBusy(ConfigError):
    """Another live run holds the folder."""


def describe(holder: dict[str, Any]) -> str:
    """'pid 123 on host h, started 2026-01-01 10:00:00 UTC: swiftune sft ...' (what is known)."""
    if not holder:
        return "a process that left no record"
    started = holder.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {when}: {holder.get('command', '?')}"


def _read(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 65536, 0)
        record = json.loads(data.decode()) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive(holder: dict[str, Any]) -> bool:
    """For file systems without flock: whether the recorded holder still runs (another host: assumed)."""
    if not holder:
        return False
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return True
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``acquire()`` takes ``<folder>/.swiftune.lock`` or raises ``RunFolderBusy`` naming the holder."""

    def __init__(self, folder: str | Path, command: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command or " ".join(Path(sys.argv[0]).name if i == 0 else a for i, a in enumerate(sys.argv))[:300]
        self.fd: int | None = None
        self.created = False
        #: The record of a dead holder this lock took over (empty when the folder was free).
        self.took_over: dict[str, Any] = {}

    def acquire(self) -> "RunLock":
        self.created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not self._lock(fd):
                holder = _read(fd)
                os.close(fd)
                raise RunFolderBusy(
                    f"--output-dir: {self.folder} is being written by another run ({describe(holder)}); "
                    "wait for it to end, or choose another --output-dir"
                )
            try:  # the previous holder may have deleted the file between our open and our lock
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        self.took_over = _read(fd)
        if self.took_over:
            print(f"swiftune: warning: {self.folder} was locked by a run that is no longer running "
                  f"({describe(self.took_over)}); taking it over", file=sys.stderr, flush=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "command": self.command}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        os.fsync(fd)
        return self

    @staticmethod
    def _lock(fd: int) -> bool:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as exc:  # a file system without flock (some network mounts)
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP):
                    raise
        return not _alive(_read(fd))

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked: a waiter that opened it sees another inode and retries
        os.close(self.fd)
        self.fd = None
        if self.created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                self.folder.rmdir()

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextlib.contextmanager
def locked_run_folder(folder: str | Path) -> Iterator[RunLock | None]:
    """Hold the run folder's lock in the main process (other ranks of a distributed run share it)."""
    from .runtime import is_main_process

    if not is_main_process():
        yield None
        return
    with RunLock(folder) as lock:
        yield lock
