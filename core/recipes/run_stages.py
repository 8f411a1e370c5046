"""The start and the end of a training run that every recipe goes through the same way.

``start_in_folder``: resume from a checkpoint, stop at once when the resumed run is already complete,
or clear a previous run that ``--overwrite_output_dir`` replaces; then resolve the precision and seed.
``train_and_save``: train, evaluate once more when the last step had no evaluation, and publish
``final/``. The rlhf and task recipes (image classification, text-to-image) call both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .run_folder import FINAL_NAME, check_resume, completed_step, final_from_checkpoint
from .runtime import is_main_process, resolve_precision


@dataclass
class RunStart:
    """What ``start_in_folder`` decided: the arguments to train with, the checkpoint to resume from
    (None: step 0), the resolved precision, and the result when the run is already complete (then
    nothing else is set up)."""

    args: Any
    resume: str | None
    precision: str = ""
    finished: Any = None  # an SftResult


def start_in_folder(args: Any, output_dir: Path) -> RunStart:
    """Resolve ``--resume`` / ``--overwrite_output_dir`` for ``output_dir`` before anything loads, then
    ``--precision`` and the seed (set here, before the model is built)."""
    from transformers import set_seed

    from .sft import SftResult, clear_previous_run, resume_checkpoint

    resume = resume_checkpoint(args, output_dir)
    if args.resume:
        args = check_resume(args, output_dir, resume)  # the run's model and tuner, before anything is written
        done = completed_step(args, resume)
        if done is not None:
            final = final_from_checkpoint(Path(resume), output_dir) if is_main_process() else output_dir / FINAL_NAME
            print(f"swiftune: the run in {output_dir} is complete (step {done}, {Path(resume).name}); nothing to "
                  "train. A larger --max-steps or --num-train-epochs continues it", flush=True)
            finished = SftResult(output_dir=output_dir, adapter_dir=final, global_step=done)
            return RunStart(args, resume, finished=finished)
    if is_main_process() and not resume and not args.resume and args.overwrite_output_dir:
        clear_previous_run(output_dir)
    precision = resolve_precision(args.precision)
    set_seed(args.seed)
    return RunStart(args, resume, precision)


def train_and_save(trainer: Any, output_dir: Path, resume: str | None, has_eval: bool) -> tuple[Any, Path]:
    """Train (from ``resume``), evaluate the final step if no evaluation landed on it, save ``final/``.

    Returns the Trainer's ``TrainOutput`` and the ``final/`` folder.
    """
    from .sft import save_final

    result = trainer.train(resume_from_checkpoint=resume)
    if has_eval and not any(r.get("step") == trainer.state.global_step and "eval_loss" in r
                            for r in trainer.state.log_history):
        trainer.evaluate()
    return result, save_final(trainer, output_dir)
