"""The swiftune cache: folders that are either complete or absent.

A cached folder is built in a temporary sibling (``.tmp-<name>-<pid>-<random>``) and moved into
place with one ``os.replace`` after a marker file was written last. A conversion that raises is
cleaned up at once; one that is killed leaves only its temporary folder, which the next build
removes once its process is gone. A folder without the marker is never used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

CACHE_ENV = "SWIFTUNE_CACHE"
MARKER = "swiftune-cache.json"
_TMP_PREFIX = ".tmp-"

logger = logging.getLogger("swiftune.loading")


def cache_root() -> Path:
    """``$SWIFTUNE_CACHE``, else ``~/.cache/swiftune`` (read at each call, so tests may set it)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "swiftune"


def is_complete(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale(parent: Path) -> list[Path]:
    """Delete temporary folders in ``parent`` whose building process no longer runs."""
    removed = []
    if not parent.is_dir():
        return removed
    for tmp in parent.glob(_TMP_PREFIX + "*"):
        try:
            pid = int(tmp.name.split("-")[-2])
        except (ValueError, IndexError):
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def _readable(folder: Path) -> None:
    """``mkdtemp`` makes a private folder; a cache is shared like any other downloaded model."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def build_atomically(folder: Path, build: Callable[[Path], None], info: dict[str, Any]) -> Path:
    """Make ``folder`` by running ``build(tmp)`` in a temporary sibling, then renaming it.

    ``info`` goes into the marker file. If another process finished the same folder first, its
    result is kept and ours dropped. Returns ``folder``.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale(folder.parent):
        logger.info("removed an unfinished cache folder left by a killed process: %s", stale)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{folder.name}-{os.getpid()}-", dir=folder.parent))
    try:
        build(tmp)
        _readable(tmp)
        (tmp / MARKER).write_text(json.dumps({**info, "created": time.time()}, indent=2))
        if folder.exists() and not is_complete(folder):
            shutil.rmtree(folder)  # never written by us (no marker): not worth keeping
        try:
            os.replace(tmp, folder)
        except OSError:
            if not is_complete(folder):
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # a concurrent build won the race
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
