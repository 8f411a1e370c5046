"""A run folder is never replaced, mixed or deleted without an explicit flag.

* A new run refuses a folder that holds a previous run (checkpoints, ``final/``, ``args.json``,
  ``logging.jsonl``) unless ``--overwrite-output-dir`` (``--resume`` continues from a checkpoint).
* ``--resume`` continues with the model and tuner the run was trained with: another ``--model`` or
  ``--tuner`` is an error naming both, raised before anything is written.
* Resuming a finished run trains nothing: it says the run is complete and returns.
* ``args.json`` is written atomically, into the run folder and into every checkpoint and ``final/``
  (``SwiftTrainer`` writes it beside the adapter), so a checkpoint folder alone rebuilds its model.
* ``export`` never writes over, into or around a folder it reads (``check_output_apart``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ..errors import ConfigError
from ..files import atomic_write

ARGS_NAME = "args.json"
FINAL_NAME = "final"
LOG_NAME = "logging.jsonl"
CHECKPOINT_GLOB = "checkpoint-*"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``path`` through a temporary sibling and one rename: readers see the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, write)  # a failed write (disk full) names the file and leaves no temporary


def read_args(folder: Path) -> dict[str, Any]:
    """The ``args.json`` of ``folder`` ({} when there is none or it does not parse)."""
    try:
        data = json.loads((folder / ARGS_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def previous_run(output_dir: Path) -> list[str]:
    """What of an earlier run ``output_dir`` holds: checkpoint folders, ``final``, ``args.json``, the log."""
    if not output_dir.is_dir():
        return []
    found = sorted(p.name for p in output_dir.glob(CHECKPOINT_GLOB) if p.is_dir())
    return found + [n for n in (FINAL_NAME, ARGS_NAME, LOG_NAME) if (output_dir / n).exists()]


def refuse_previous_run(output_dir: Path) -> None:
    """A new run (no ``--resume``, no ``--overwrite-output-dir``) in a folder that holds one: an error."""
    held = previous_run(output_dir)
    if not held:
        return
    shown = ", ".join(held[:6]) + (", ..." if len(held) > 6 else "")
    if any(n.startswith("checkpoint-") for n in held):
        raise ConfigError(
            f"--output-dir: {output_dir} already holds checkpoints; pass --resume to continue that run, "
            f"--overwrite-output-dir to start afresh, or another --output-dir (it holds {shown})"
        )
    raise ConfigError(
        f"--output-dir: {output_dir} already holds a run ({shown}); pass --overwrite-output-dir to replace it, "
        "or choose another --output-dir"
    )


def check_resume(args: Any, output_dir: Path, checkpoint: str | None) -> Any:
    """Before a resume writes anything: the model and tuner must be the run's. Returns ``args``, with
    the run's model when ``--model`` was not given."""
    from .sft import resolve_model

    if checkpoint is None:
        if (output_dir / FINAL_NAME).exists():
            raise ConfigError(
                f"--resume: {output_dir} holds a finished run ({FINAL_NAME}/) but no checkpoint to continue from; "
                "pass --overwrite-output-dir to start afresh, or choose another --output-dir"
            )
        return args
    recorded = read_args(Path(checkpoint)) or read_args(output_dir)
    run_model, run_tuner = recorded.get("model"), recorded.get("tuner")
    if run_model and "model" not in args.model_fields_set:
        args = args.model_copy(update={"model": run_model})
    elif run_model and resolve_model(args.model) != run_model:
        raise ConfigError(
            f"--model: {args.model} is not the model the run in {output_dir} was trained with ({run_model}); "
            f"resume with --model {run_model}, or start a new run in another --output-dir"
        )
    if run_tuner and args.tuner != run_tuner:
        raise ConfigError(
            f"--tuner: {args.tuner} is not the tuner the run in {output_dir} was trained with ({run_tuner}); "
            f"resume with --tuner {run_tuner}, or start a new run in another --output-dir"
        )
    return args


def completed_step(args: Any, checkpoint: str | None) -> int | None:
    """The checkpoint's step when the run it belongs to has nothing left to train under ``args``."""
    if checkpoint is None:
        return None
    try:
        state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    step, planned = int(state.get("global_step", 0)), int(state.get("max_steps", 0) or 0)
    if args.max_steps > 0:
        done = step >= args.max_steps
    else:
        done = planned > 0 and step >= planned and args.num_train_epochs <= float(state.get("num_train_epochs") or 0)
    return step if done else None


def final_from_checkpoint(checkpoint: Path, output_dir: Path) -> Path:
    """``final/`` for a finished run killed before it was written: the last checkpoint's adapter files."""
    import shutil

    from .trainer import STAGING, publish

    final = output_dir / FINAL_NAME
    if final.exists():
        return final
    skip = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "scaler.pt"}
    staged = output_dir / STAGING / FINAL_NAME
    shutil.rmtree(staged, ignore_errors=True)
    shutil.copytree(checkpoint, staged, ignore=lambda _, names: [n for n in names if n in skip or n.startswith("rng_state")])
    publish(staged, final)
    return final


def _run_folder_of(adapter: Path) -> Path | None:
    """The sft run folder an adapter folder belongs to (itself, or the parent of final/ or checkpoint-N)."""
    if (adapter / ARGS_NAME).is_file() and (adapter / FINAL_NAME).is_dir():
        return adapter
    if adapter.name == FINAL_NAME or adapter.name.startswith("checkpoint-") or (adapter.parent / ARGS_NAME).is_file():
        return adapter.parent
    return None


def folders_read(adapters: Iterable[str], model: str | None = None) -> list[Path]:
    """Every folder an ``export`` (or ``infer``) of ``adapters`` reads: the adapter folders, their run
    folders and a local base model folder."""
    from .rebuild import locate_adapter

    folders: list[Path] = []
    base = model
    for given in adapters:
        path = Path(given).expanduser().resolve()
        folders.append(path)
        if not path.exists():
            continue
        folder, run_args = locate_adapter(path)
        folder = folder.resolve()
        folders.append(folder)
        run = _run_folder_of(folder)
        if run is not None:
            folders.append(run)
        base = base or run_args.get("model")
    if base and Path(base).expanduser().is_dir():
        folders.append(Path(base).expanduser().resolve())
    return list(dict.fromkeys(folders))


def check_output_apart(output: Path, reads: Iterable[Path], flag: str = "--output") -> None:
    """Refuse an output folder that is, holds or lies inside a folder being read (whatever the flags:
    replacing it would delete what is being read)."""
    out = output.expanduser().resolve()
    for folder in reads:
        if out == folder:
            relation = "is"
        elif out.is_relative_to(folder):
            relation = "lies inside"
        elif folder.is_relative_to(out):
            relation = "holds"
        else:
            continue
        raise ConfigError(f"{flag}: {output} {relation} {folder}, which this command reads; choose an output folder "
                          "apart from the adapters, their run folders and the base model")
