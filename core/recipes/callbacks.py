"""Trainer callbacks of ``swiftune sft``: the ``logging.jsonl`` run log and test hooks.

``logging.jsonl`` has one JSON object per Trainer log event (training logs and eval logs are
separate lines of the same step), written by the main process only. On resume, lines logged after
the checkpoint the run resumes from are dropped first, so the file reads as one uninterrupted run.
A torn last line (the disk filled up, or the process died, during an append) is dropped with a
warning; a damaged line before it is an error naming the file and the line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from ..errors import FileError
from ..files import atomic_write, naming_file
from .faults import fault_point
from .runtime import memory_mb
from .run_folder import LOG_NAME  # the run folder's layout, named once

log = logging.getLogger("swiftune.run")

#: Test hook: each rank writes ``digest-rank<R>.json`` (a hash of its adapter weights) there at the end.
DIGEST_ENV = "SWIFTUNE_DIGEST_DIR"

_RENAMES = {"train_loss": "train_loss_mean"}


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a run log; a torn last line is dropped with a warning naming file and line."""
    path = Path(path)
    if not path.is_file():
        return []
    with naming_file(path, "read the run log"):
        text = path.read_text(encoding="utf-8", errors="replace")
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    records: list[dict[str, Any]] = []
    for index, (number, line) in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected a JSON object, got {type(record).__name__}")
        except ValueError as exc:
            reason = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            if index == len(lines) - 1:
                log.warning("swiftune: %s line %d: dropped a torn last line of the run log (%s): %.60r",
                            path, number, reason, line)
                break
            raise FileError(f"{path} line {number}: damaged run log line ({reason}); only a torn last line "
                            "is repaired: remove or fix this line to resume") from None
        records.append(record)
    return records


def _clean(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger(TrainerCallback):
    """Appends ``{step, loss, eval_loss, learning_rate, tokens_per_second, elapsed_s, remaining_s,
    memory_mb, ...}`` lines to ``<output>/logging.jsonl``."""

    def __init__(self, output_dir: str | Path) -> None:
        self.path = Path(output_dir) / LOG_NAME
        self._start = self._last_time = time.monotonic()
        self._start_step = 0
        self._last_tokens = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last_time = time.monotonic()
        self._start_step = state.global_step
        self._last_tokens = state.num_input_tokens_seen or 0
        if state.is_world_process_zero:
            # Resuming: forget what was logged after the checkpoint (it will be logged again).
            kept = [r for r in read_log(self.path) if r.get("step", 0) <= state.global_step]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, lambda tmp: Path(tmp).write_text("".join(json.dumps(r) + "\n" for r in kept)))

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.monotonic()
        elapsed = now - self._start
        done = state.global_step - self._start_step
        remaining = elapsed / done * max(state.max_steps - state.global_step, 0) if done > 0 else None
        record: dict[str, Any] = {"step": state.global_step}
        for key, value in logs.items():
            record[_RENAMES.get(key, key)] = _clean(value)
        if "loss" in logs:
            tokens = state.num_input_tokens_seen or 0
            span = now - self._last_time
            record["tokens_per_second"] = round((tokens - self._last_tokens) / span, 1) if span > 0 and tokens else None
            self._last_tokens, self._last_time = tokens, now
        record.update(elapsed_s=round(elapsed, 2), remaining_s=None if remaining is None else round(remaining, 1),
                      memory_mb=round(memory_mb(), 1))
        with naming_file(self.path, "append to the run log"), self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


class FaultCallback(TrainerCallback):
    """``SWIFTUNE_FAULT=after_save:N``: die right after checkpoint N is published (tests)."""

    def on_save(self, args, state, control, **kwargs):
        fault_point("after_save", state.global_step)


def adapter_digest(model: torch.nn.Module) -> str:
    """SHA-256 over the trainable tensors, by name (equal digests: equal adapters). Sharded
    parameters (FSDP2, ZeRO-3) are gathered first: every rank must call this."""
    from .sharding import full_parameters

    h = hashlib.sha256()
    with full_parameters(model):
        for name, p in sorted(model.named_parameters()):
            if p.requires_grad:
                h.update(name.encode())
                h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def sharded_parameters(model: torch.nn.Module) -> int:
    """How many trainable parameters are split across ranks (FSDP2's DTensors, ZeRO-3's partitions)."""
    return sum(1 for p in model.parameters() if p.requires_grad and (hasattr(p, "full_tensor") or hasattr(p, "ds_id")))


class DigestCallback(TrainerCallback):
    """Test hook (``SWIFTUNE_DIGEST_DIR``): every rank writes its adapter digest before and after."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.initial: str | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.initial = adapter_digest(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {"rank": args.process_index, "world_size": args.world_size, "global_step": state.global_step,
                  "initial": self.initial, "final": adapter_digest(model), "sharded": sharded_parameters(model)}
        (self.folder / f"digest-rank{args.process_index}.json").write_text(json.dumps(record))


def debug_hooks() -> list[TrainerCallback]:
    hooks: list[TrainerCallback] = [FaultCallback()]
    if os.environ.get(DIGEST_ENV):
        hooks.append(DigestCallback(os.environ[DIGEST_ENV]))
    return hooks
