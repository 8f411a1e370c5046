"""File writes and reads whose failures name the file.

Libraries often report a failed write or read without a path ("File too large (os error 27)",
"Error while deserializing header", a bare ``JSONDecodeError``); in a run folder of many files a
user must learn which one. ``naming_file`` re-raises such errors as ``FileError`` with the path,
and ``atomic_write`` writes through a temporary file that gets the permissions any other file of
the folder gets (``mkstemp`` would make it 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import FileError, SwiftuneError


def describe(exc: BaseException) -> str:
    """A one-line reason: the exception's message without the path it may repeat."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, json.JSONDecodeError):
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def naming_file(path: str | Path, action: str, error: type[SwiftuneError] = FileError) -> Iterator[None]:
    """Re-raise an I/O, decoding or library error inside the block as ``error`` naming ``path``.

    ``action`` completes "cannot ...": "read", "write", "write checkpoint". Errors swiftune raised
    on purpose pass through unchanged (they already say where)."""
    try:
        yield
    except SwiftuneError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError) as exc:  # safetensors / torch raise these
        raise error(f"{path}: cannot {action}: {describe(exc)}") from exc
    except Exception as exc:
        # SafetensorError derives from Exception only.
        if type(exc).__name__ != "SafetensorError":
            raise
        raise error(f"{path}: cannot {action}: {describe(exc)}") from exc


def _create_exclusive(path: Path) -> int:
    """Create an empty file with mode 0666 & ~umask, as ``open(path, "w")`` would; returns the mode."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], Any]) -> None:
    """Write ``path`` through ``write(temporary_path)`` and one rename: never half-written.

    The file gets the mode ``open(path, "w")`` would give it, even when ``write`` replaces the
    temporary file by one of its own (safetensors writes through a private 0600 file and renames
    it). On failure the temporary file is removed and a ``FileError`` names ``path``."""
    path = Path(path)
    with naming_file(path, "write"):
        while True:
            tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
            try:
                mode = _create_exclusive(tmp)
                break
            except FileExistsError:
                continue
        try:
            write(str(tmp))
            if stat.S_IMODE(os.stat(tmp).st_mode) != mode:
                os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def damaged_safetensors(folder: str | Path) -> list[str]:
    """The ``*.safetensors`` files of ``folder`` whose header does not open or does not cover the
    file (truncated, empty, not safetensors), each as "path: why". Reads headers only."""
    from safetensors import safe_open

    problems: list[str] = []
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with naming_file(path, "read safetensors weights"), safe_open(str(path), framework="pt") as handle:
                handle.keys()
        except FileError as exc:
            problems.append(str(exc))
    return problems


def usual_permissions(folder: str | Path) -> None:
    """Give the files under ``folder`` the mode ``open(path, "w")`` gives a new file there, where a
    library made them stricter (transformers' ``save_pretrained`` writes ``model.safetensors``
    0600 through safetensors while its JSON files are 0644)."""
    folder = Path(folder)
    probe = folder / f".mode-probe-{secrets.token_hex(4)}"
    mode = _create_exclusive(probe)
    probe.unlink()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) & mode != mode:
            path.chmod(stat.S_IMODE(path.stat().st_mode) | mode)


def read_json(path: str | Path, error: type[SwiftuneError] = FileError) -> Any:
    """Parse a JSON file; errors name the file (and the line for a syntax error)."""
    with naming_file(path, "read", error):
        return json.loads(Path(path).read_text(encoding="utf-8"))
