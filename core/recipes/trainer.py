"""``SwiftTrainer``: the transformers ``Trainer``, saving adapters and checkpointing atomically.

* Model files are the adapters alone (``SwiftModel.save_pretrained``: PEFT's layout, safetensors),
  not the whole state dict; resuming loads them back into the tuners already on the model.
* A checkpoint is written by the Trainer into ``<output>/.staging/checkpoint-N`` and published by
  one ``os.replace`` to ``<output>/checkpoint-N`` once every file (adapter, optimizer, scheduler,
  RNG, trainer state) is there, so a kill during saving never leaves a ``checkpoint-N`` that looks
  complete and is not. Old checkpoints are retired the same way (renamed away, then deleted).
* Optimizer, scheduler, RNG and data position are restored by the Trainer's own resume.
* ``compute_loss`` adds what the lean paths of ``sft`` need (``lean``): ``no_kv_cache`` (padding-free
  batches need it for their masks to keep the examples of a row apart; compiled blocks, so as not
  to recompile), ``answer_logits_only`` (the causal-LM head computes logits only where a label is
  trained, ``answer_logits``) and ``head_loss`` (the LM head fused into the loss in row chunks).

The private ``Trainer`` members overridden or copied here are listed, with why, in
``trainer_private.py``; tests/test_trainer_private.py checks them against the installed transformers.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from transformers import Trainer
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..files import naming_file
from ..serialization import adapter_dir
from ..swift_model import SwiftModel
from .answer_logits import keep_answer_positions
from .faults import fault_point
from .head_loss import HeadLoss
from .sharding import full_parameters, is_sharded

STAGING = ".staging"
STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def checkpoints_by_step(output_dir: str | Path) -> list[Path]:
    """Every ``checkpoint-N`` folder, oldest step first (staging folders are never listed)."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def complete_checkpoints(output_dir: str | Path) -> list[Path]:
    """Published checkpoints, oldest first (staging folders are never listed)."""
    return [p for p in checkpoints_by_step(output_dir) if (p / STATE_FILE).is_file()]


def newest_checkpoint(output_dir: str | Path) -> Path | None:
    found = complete_checkpoints(output_dir)
    return found[-1] if found else None


def retire(path: Path, staging_root: Path) -> None:
    """Delete a folder so that no half-deleted copy is ever visible under its name."""
    staging_root.mkdir(parents=True, exist_ok=True)
    trash = staging_root / f"trash-{path.name}-{os.getpid()}"
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def publish(staged: Path, final: Path) -> None:
    """Move a finished folder into place in one rename (an older folder of that name is retired)."""
    if final.exists():
        retire(final, staged.parent)
    os.replace(staged, final)


def load_adapters_into(model: SwiftModel, folder: str | Path) -> None:
    """Load every adapter saved in ``folder`` into the tuner of the same name on ``model``."""
    for name, tuner in model.tuners.items():
        tuner.load_state_dict(model.model, tuner.read_weights(adapter_dir(folder, name)))


class AdapterCheckpoints:
    """Mixin for a ``Trainer`` subclass (``SwiftTrainer``, the rlhf trainers on TRL): checkpoints hold
    the adapters of the ``SwiftModel`` and are published atomically (see the module docstring).

    The ``SwiftModel`` is the trainer's model, or ``swift`` when the trainer is given the model
    inside it (TRL's trainers want a transformers model)."""

    _staging = False
    swift: SwiftModel | None = None

    def __init__(self, *args: Any, swift: SwiftModel | None = None, **kwargs: Any) -> None:
        self.swift = swift  # before the Trainer's __init__: TRL's trainers use it there (reference pass)
        super().__init__(*args, **kwargs)

    # -- what a checkpoint holds ------------------------------------------------------------------
    def _swift_model(self) -> SwiftModel | None:
        if self.swift is not None:
            return self.swift
        model = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        return model if isinstance(model, SwiftModel) else None

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        swift = self._swift_model()
        if swift is None:
            return super()._save(output_dir, state_dict)
        if is_sharded(swift):  # FSDP2 / ZeRO-3: every rank is here and takes part in the gather
            with full_parameters(swift):
                self._write_adapters(swift, output_dir)
        else:
            self._write_adapters(swift, output_dir)

    def _write_adapters(self, swift: SwiftModel, output_dir: str | None) -> None:
        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        swift.save_pretrained(output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)
        if getattr(self, "run_args", None):  # what this checkpoint was trained with: it rebuilds its own model
            from .run_folder import ARGS_NAME, write_json_atomic

            write_json_atomic(Path(output_dir) / ARGS_NAME, self.run_args)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        swift = self._swift_model()
        if swift is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        load_adapters_into(swift, resume_from_checkpoint)

    def _load_best_model(self) -> None:
        swift = self._swift_model()
        if swift is None:
            return super()._load_best_model()
        load_adapters_into(swift, self.state.best_model_checkpoint)

    # -- atomic checkpoints -----------------------------------------------------------------------
    def _get_output_dir(self, trial: Any) -> str:
        run_dir = super()._get_output_dir(trial)
        return os.path.join(run_dir, STAGING) if self._staging else run_dir

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = Path(super()._get_output_dir(trial))
        staging_root = run_dir / STAGING
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        staged, final = staging_root / name, run_dir / name
        if self.args.should_save and staged.exists():
            shutil.rmtree(staged)  # a leftover of a run killed while saving
        self.accelerator.wait_for_everyone()
        self._staging = True
        try:
            with naming_file(staged, "write the checkpoint"):  # torch.save's errors name no file
                super()._save_checkpoint(model, trial)
        finally:
            self._staging = False
        # Every rank has written its part (e.g. its RNG state) before the folder is published.
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            self._unstage_best(staged, final)
            fault_point("before_publish", self.state.global_step)
            publish(staged, final)
            self._rotate(run_dir)
        self.accelerator.wait_for_everyone()

    def _unstage_best(self, staged: Path, final: Path) -> None:
        """The Trainer recorded the best checkpoint under its staging path: point it at the final one."""
        best = self.state.best_model_checkpoint
        if best and Path(best) == staged:
            self.state.best_model_checkpoint = str(final)
            self.state.save_to_json(str(staged / STATE_FILE))

    def _rotate(self, run_dir: Path) -> None:
        limit = self.args.save_total_limit
        if not limit or limit <= 0:
            return
        checkpoints = checkpoints_by_step(run_dir)
        protected = {checkpoints[-1]} if checkpoints else set()
        if self.state.best_model_checkpoint:
            protected.add(Path(self.state.best_model_checkpoint))
        excess = len(checkpoints) - max(limit, len(protected))
        for path in checkpoints:
            if excess <= 0:
                break
            if path not in protected:
                retire(path, run_dir / STAGING)
                excess -= 1


class SwiftTrainer(AdapterCheckpoints, Trainer):
    """A ``Trainer`` whose model is a ``SwiftModel``; see the module docstring."""

    def __init__(self, *args: Any, no_kv_cache: bool = False, answer_logits_only: bool = False,
                 head_loss: HeadLoss | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.no_kv_cache = no_kv_cache
        self.answer_logits_only = answer_logits_only
        self.head_loss = head_loss

    # -- the loss -----------------------------------------------------------------------------------
    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.no_kv_cache:
            inputs = {**inputs, "use_cache": False}
        plain_loss = self.label_smoother is None and self.compute_loss_func is None
        # Evaluation asks for the outputs too, but without compute_metrics it keeps only the loss.
        logits_unused = not return_outputs or self.compute_metrics is None
        if plain_loss and logits_unused:
            if self.answer_logits_only:
                inputs = keep_answer_positions(inputs)
            if self.head_loss is not None and "labels" in inputs:
                return self._fused_head_loss(model, inputs, return_outputs, num_items_in_batch)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _fused_head_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool,
                         num_items_in_batch: Any) -> Any:
        """``head_loss``'s loss, reduced and scaled as ``Trainer.compute_loss`` treats the model's own."""
        takes_items = self.model_accepts_loss_kwargs and num_items_in_batch is not None
        loss, outputs = self.head_loss.loss(model, inputs, num_items_in_batch if takes_items else None)
        if self.args.average_tokens_across_devices and takes_items:
            loss_scale = self.accelerator.num_processes // self.get_tp_size()
            loss = loss * (loss_scale if self.args.n_gpu <= 1 else self.args.n_gpu)
        return (loss, outputs) if return_outputs else loss
