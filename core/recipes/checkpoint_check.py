"""Which published checkpoint ``--resume`` can continue from.

A checkpoint is published in one rename once complete, but its files can still be damaged later
(a full disk while copying a run, a truncated download, a bad sector). Resuming from one used to
stop with the reader's raw message; instead, ``--resume`` takes the newest checkpoint whose files
all open, with a warning naming each newer one it passes over, and fails naming the files when
none does. The checks read headers and structure, not every byte: JSON files parse, the
Trainer's ``.pt`` / ``.pth`` files (zip archives) have their central directory and every member
inside the file, safetensors headers cover their files; the weights themselves are read, one
tensor at a time, because a checkpoint with NaN / inf weights must not be continued (nor be made
the ``final/`` adapter of a finished run).
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

from ..errors import ConfigError, FileError
from ..files import naming_file, read_json
from ..serialization import CONFIG_NAME
from .trainer import STATE_FILE, complete_checkpoints

log = logging.getLogger("swiftune.run")


def _zip_problem(path: Path) -> str | None:
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.header_offset + info.compress_size > size:
                    return f"{path}: truncated (member {info.filename} ends past the end of the file)"
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return f"{path}: not a readable torch file ({exc})"
    return None


def _safetensors_problem(path: Path) -> str | None:
    import torch
    from safetensors import safe_open

    try:
        with naming_file(path, "read safetensors weights"), safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                tensor = handle.get_tensor(key)
                if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                    return f"{path}: tensor '{key}' holds NaN/inf values"
    except FileError as exc:
        return str(exc)
    return None


def _missing_parts(folder: Path) -> str | None:
    """What a published checkpoint lacks that the Trainer would silently do without (a fresh
    optimizer) or fail on: the adapter config and weights, the optimizer state."""
    if not (folder / CONFIG_NAME).is_file():
        return CONFIG_NAME
    if not any(folder.rglob("*.safetensors")):
        return "the adapter weights (*.safetensors)"
    names = {p.name for p in folder.iterdir()}
    sharded = any(n.startswith(("global_step", "optimizer")) and (folder / n).is_dir() for n in names)  # DeepSpeed, FSDP
    if not names & {"optimizer.pt", "optimizer.bin"} and not sharded:
        return "the optimizer state (optimizer.pt)"
    return None


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why ``folder`` cannot be resumed from (a sentence that names the damaged file), or None."""
    folder = Path(folder)
    state = folder / STATE_FILE
    try:
        data = read_json(state)
    except FileError as exc:
        return str(exc)
    if not isinstance(data, dict) or not isinstance(data.get("global_step"), int):
        return f"{state}: not a trainer state (no global_step)"
    missing = _missing_parts(folder)
    if missing:
        return f"{folder}: {missing} is missing"
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".json" and path != state:
            try:
                read_json(path)
            except FileError as exc:
                return str(exc)
        elif path.suffix == ".safetensors":
            problem = _safetensors_problem(path)
            if problem:
                return problem
        elif path.suffix in (".pt", ".pth"):
            problem = _zip_problem(path)
            if problem:
                return problem
    return None


def check_resumable(folder: str | Path) -> None:
    """An explicit ``--resume FOLDER``: an error naming the damaged file (no silent fallback)."""
    problem = checkpoint_problem(folder)
    if problem:
        raise ConfigError(f"--resume: {folder} cannot be resumed from: {problem}")


def newest_good_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest published checkpoint that can be resumed from (None when there is none at all).

    Newer damaged ones are passed over with a warning; when every one is damaged it is an error
    naming each of them (a run is never silently restarted from step 0 over its checkpoints)."""
    found = complete_checkpoints(output_dir)
    problems: list[str] = []
    for folder in reversed(found):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        log.warning("swiftune: %s is damaged and is skipped: %s", folder, problem)
        problems.append(problem)
    if problems:
        raise ConfigError(
            f"--resume: no checkpoint of {output_dir} can be resumed from: {'; '.join(problems)}. "
            "Remove the damaged checkpoint folders, or start afresh (no --resume, with --overwrite-output-dir)"
        )
    return None
